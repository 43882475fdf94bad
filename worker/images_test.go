package worker_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"xcatbm/internal/testkit/testopenstack"
	"xcatbm/messages"
	"xcatbm/worker"
)

const simImage = "rhels7.5-x86_64-install-compute" // sim.NewCluster's osimage

// cloudsYAML writes a clouds.yaml with cloud "plane" (glance at glanceURL, no
// Keystone) and cloud "dead" (nothing listens), and returns its path.
func cloudsYAML(t *testing.T, glanceURL, neutronURL string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	_ = l.Close()
	p := filepath.Join(t.TempDir(), "clouds.yaml")
	body := fmt.Sprintf(`clouds:
  plane:
    auth_type: admin_token
    auth:
      token: %s
    image_endpoint_override: %s
    network_endpoint_override: %s
  dead:
    auth_type: none
    image_endpoint_override: %s
`, testopenstack.Token, glanceURL, neutronURL, dead)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRegisterImagesRefusals(t *testing.T) {
	e := newEnv(t)
	cfg := testConfig()
	cfg.CloudsFile = cloudsYAML(t, "http://127.0.0.1:1", "http://127.0.0.1:1")
	e.startWorker(cfg)
	for _, c := range []struct {
		name string
		args messages.RegisterImagesArgs
		want []string
	}{
		{"missing osimages reported together", messages.RegisterImagesArgs{Cloud: "plane", Images: []messages.ImageRegistration{
			{XCATName: "nope1", Name: "a"}, {XCATName: simImage, Name: "b"}, {XCATName: "nope2", Name: "c"}}}, []string{"nope1, nope2", "not defined in xCAT"}},
		{"cloud not in clouds.yaml", messages.RegisterImagesArgs{Cloud: "prod", Images: []messages.ImageRegistration{{XCATName: simImage, Name: "x"}}},
			[]string{`cloud "prod" is not in`, "dead, plane"}},
		{"unreachable cloud", messages.RegisterImagesArgs{Cloud: "dead", Images: []messages.ImageRegistration{{XCATName: simImage, Name: "x"}}},
			[]string{"connection refused"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := e.submit(messages.MethodRegisterImages, &c.args)
			if s.Failed != 1 || s.ExitCode() != 1 {
				t.Fatalf("%+v", s)
			}
			for _, w := range c.want {
				if !strings.Contains(s.Results[len(s.Results)-1].Message, w) {
					t.Errorf("message lacks %q: %+v", w, s.Results)
				}
			}
		})
	}
}

// TestRegisterImagesGlance registers an osimage in the real glance of a test plane
// (XCATBM_TEST_OPENSTACK=1 or XCATBM_TEST_OPENSTACK_DIR).
func TestRegisterImagesGlance(t *testing.T) {
	plane := testopenstack.Start(t)
	ic := plane.ImageClient()
	e := newEnv(t)
	cfg := testConfig()
	cfg.CloudsFile = cloudsYAML(t, plane.GlanceURL, plane.NeutronURL)
	e.startWorker(cfg)
	ctx := context.Background()
	name := "xcatbm-test-" + messages.NewUniqueID()[:8]
	t.Cleanup(func() {
		page, err := images.List(ic, images.ListOpts{Name: name}).AllPages(ctx)
		if err != nil {
			return
		}
		found, _ := images.ExtractImages(page)
		for _, im := range found {
			_ = images.Delete(ctx, ic, im.ID).ExtractErr()
		}
	})
	args := &messages.RegisterImagesArgs{Cloud: "plane", Images: []messages.ImageRegistration{{XCATName: simImage, Name: name}}}

	s := e.submit(messages.MethodRegisterImages, args)
	if s.OK != 1 || !strings.HasPrefix(s.Results[0].Message, "created ") {
		t.Fatalf("first run: %+v", s)
	}
	id := strings.TrimPrefix(s.Results[0].Message, "created ")
	img, err := images.Get(ctx, ic, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if img.Name != name || img.DiskFormat != "qcow2" || img.ContainerFormat != "bare" || img.Visibility != images.ImageVisibilityPublic ||
		img.Properties[worker.ImageProperty] != simImage || img.Status != images.ImageStatusActive {
		t.Errorf("image in glance: name %s disk %s container %s visibility %s status %s %s=%v", img.Name, img.DiskFormat,
			img.ContainerFormat, img.Visibility, img.Status, worker.ImageProperty, img.Properties[worker.ImageProperty])
	}

	// A second run changes nothing.
	s = e.submit(messages.MethodRegisterImages, args)
	if s.OK != 1 || s.Results[0].Message != "unchanged "+id {
		t.Errorf("second run: %+v", s)
	}
	after, err := images.Get(ctx, ic, id).Extract()
	if err != nil {
		t.Fatal(err)
	}
	if !after.UpdatedAt.Equal(img.UpdatedAt) {
		t.Errorf("image updated by the second run: %v → %v", img.UpdatedAt, after.UpdatedAt)
	}

	// A drifted image is brought back.
	if _, err := images.Update(ctx, ic, id, images.UpdateOpts{images.UpdateImageProperty{Op: images.ReplaceOp, Name: worker.ImageProperty, Value: "other"}}).Extract(); err != nil {
		t.Fatal(err)
	}
	s = e.submit(messages.MethodRegisterImages, args)
	if s.OK != 1 || !strings.Contains(s.Results[0].Message, "updated "+id) {
		t.Errorf("drifted image: %+v", s)
	}
	if img, err := images.Get(ctx, ic, id).Extract(); err != nil || img.Properties[worker.ImageProperty] != simImage {
		t.Errorf("after update: %v %v", err, img.Properties[worker.ImageProperty])
	}
}
