package worker

// register_images: every xCAT osimage named by the job must exist (all missing ones
// are reported together and nothing is created); then each gets a Glance image named
// as asked, disk_format qcow2, container_format bare, public, with property
// xcat_image_name=<osimage>. An image of that name is reused: when its visibility or
// property differ they are updated, else it is reported unchanged. The image's data is
// a short placeholder (xCAT provisions the node; nova only needs an active image).
// The worker chooses each new image's id, so a create whose answer a closed
// connection lost is found by it rather than made twice.
//
// The cloud is the job's, looked up in the worker's clouds.yaml (Config.CloudsFile,
// else the usual places; see package internal/cloud).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"

	"xcatbm/internal/cloud"
	"xcatbm/internal/httpretry"
	"xcatbm/messages"
)

// ImageProperty is the Glance image property naming the xCAT osimage; spawn reads it.
const ImageProperty = "xcat_image_name"

// ErrMissingOSImages: osimages the job names are not defined in xCAT.
var ErrMissingOSImages = errors.New("not defined in xCAT (lsdef -t osimage)")

func (w *Worker) registerImages(ctx context.Context, r *run) error {
	var a messages.RegisterImagesArgs
	if err := json.Unmarshal(r.req.Job, &a); err != nil {
		return fmt.Errorf("stored register_images args: %w", err)
	}
	rx, ok := w.xc.(registrationXCAT)
	if !ok {
		return errors.New("the xCAT client cannot list osimages")
	}
	cctx, cancel := context.WithTimeout(ctx, w.cfg.XCATTimeout)
	defer cancel()
	defined, err := rx.LsDefOSImages(cctx, nil, "provmethod")
	if err != nil {
		return fmt.Errorf("lsdef -t osimage: %w", err)
	}
	var missing []string
	for _, im := range a.Images {
		if _, ok := defined[im.XCATName]; !ok && !slices.Contains(missing, im.XCATName) {
			missing = append(missing, im.XCATName)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("osimage %s: %w", strings.Join(missing, ", "), ErrMissingOSImages)
	}
	c, err := cloud.Open(ctx, cloud.Options{File: w.cfg.CloudsFile, Name: a.Cloud, Getenv: w.cfg.Getenv})
	if err != nil {
		return err
	}
	ic, err := c.Image()
	if err != nil {
		return err
	}
	p := w.newProgress(r, len(a.Images))
	for _, im := range a.Images {
		status, msg, err := ensureImage(ctx, ic, im)
		if err != nil {
			if p.failOrStop(ctx, im.Name, err) {
				return err
			}
			continue
		}
		p.add(ctx, im.Name, status, msg)
	}
	return nil
}

// failOrStop records a per-image failure; when the service cannot be reached at all
// it reports true: the job stops (and is retried) rather than fail every image alike.
func (p *progress) failOrStop(ctx context.Context, name string, err error) bool {
	var se *cloud.ServiceError
	if !errors.As(err, &se) {
		return true
	}
	p.add(ctx, name, messages.ItemFailed, err.Error())
	return false
}

// placeholder is the data of a registered image: nova needs the image active, xCAT
// installs the node from its own osimage.
func placeholder(xcatName string) string {
	return "xcatbm placeholder: the node is installed by xCAT from osimage " + xcatName + "\n"
}

// ensureImage creates or updates one Glance image and says what it did.
func ensureImage(ctx context.Context, ic *gophercloud.ServiceClient, im messages.ImageRegistration) (status, msg string, err error) {
	page, err := images.List(ic, images.ListOpts{Name: im.Name}).AllPages(ctx)
	if err != nil {
		return "", "", fmt.Errorf("list images named %s: %w", im.Name, cloud.Describe(err))
	}
	found, err := images.ExtractImages(page)
	if err != nil {
		return "", "", fmt.Errorf("list images named %s: %w", im.Name, err)
	}
	switch len(found) {
	case 0:
		img, _, err := createImage(ctx, ic, im)
		if err != nil {
			return "", "", fmt.Errorf("create image %s: %w", im.Name, cloud.Describe(err))
		}
		if err := uploadPlaceholder(ctx, ic, img.ID, im.XCATName); err != nil {
			return "", "", fmt.Errorf("upload image %s (%s): %w", im.Name, img.ID, cloud.Describe(err))
		}
		return messages.ItemOK, "created " + img.ID, nil
	case 1:
	default:
		ids := make([]string, len(found))
		for i, f := range found {
			ids[i] = f.ID
		}
		return messages.ItemFailed, fmt.Sprintf("%d images are named %s (%s); remove the extra ones", len(found), im.Name, strings.Join(ids, ", ")), nil
	}
	img := found[0]
	var patch images.UpdateOpts
	var what []string
	if img.Visibility != images.ImageVisibilityPublic {
		patch = append(patch, images.UpdateVisibility{Visibility: images.ImageVisibilityPublic})
		what = append(what, "visibility public")
	}
	if cur, ok := img.Properties[ImageProperty]; !ok || cur != im.XCATName {
		op := images.AddOp
		if ok {
			op = images.ReplaceOp
		}
		patch = append(patch, images.UpdateImageProperty{Op: op, Name: ImageProperty, Value: im.XCATName})
		what = append(what, ImageProperty+"="+im.XCATName)
	}
	if img.DiskFormat != "qcow2" && img.DiskFormat != "" || img.ContainerFormat != "bare" && img.ContainerFormat != "" {
		return messages.ItemFailed, fmt.Sprintf("image %s (%s) has disk_format %s, container_format %s; want qcow2, bare (delete it to re-create)",
			im.Name, img.ID, img.DiskFormat, img.ContainerFormat), nil
	}
	if len(patch) > 0 {
		// The patch sets absolute values: applying it twice is applying it once.
		if _, err := images.Update(httpretry.Idempotent(ctx), ic, img.ID, patch).Extract(); err != nil {
			return "", "", fmt.Errorf("update image %s (%s): %w", im.Name, img.ID, cloud.Describe(err))
		}
	}
	if img.Status == images.ImageStatusQueued {
		if err := uploadPlaceholder(ctx, ic, img.ID, im.XCATName); err != nil {
			return "", "", fmt.Errorf("upload image %s (%s): %w", im.Name, img.ID, cloud.Describe(err))
		}
		what = append(what, "data uploaded")
	}
	if len(what) == 0 {
		return messages.ItemOK, "unchanged " + img.ID, nil
	}
	return messages.ItemOK, "updated " + img.ID + ": " + strings.Join(what, ", "), nil
}

// createImage creates the Glance image with an id chosen here, so that a create whose
// answer was lost is found by that id instead of made twice (cloud.Create).
func createImage(ctx context.Context, ic *gophercloud.ServiceClient, im messages.ImageRegistration) (*images.Image, bool, error) {
	id := uuid.NewString()
	vis := images.ImageVisibilityPublic
	return cloud.Create(ctx, func(ctx context.Context) (*images.Image, error) {
		return images.Create(ctx, ic, images.CreateOpts{ID: id, Name: im.Name, DiskFormat: "qcow2", ContainerFormat: "bare",
			Visibility: &vis, Properties: map[string]string{ImageProperty: im.XCATName}}).Extract()
	}, func(ctx context.Context) (*images.Image, error) {
		img, err := images.Get(ctx, ic, id).Extract()
		if gophercloud.ResponseCodeIs(err, 404) {
			return nil, nil
		}
		return img, err
	})
}

// uploadPlaceholder uploads an image's placeholder data. The PUT is resent when a
// kept connection was closed under it; when an upload whose answer was lost made
// the image active, the resent one is refused (409) and the image's status says the
// data is there.
func uploadPlaceholder(ctx context.Context, ic *gophercloud.ServiceClient, id, xcatName string) error {
	err := imagedata.Upload(ctx, ic, id, strings.NewReader(placeholder(xcatName))).ExtractErr()
	if err == nil || !gophercloud.ResponseCodeIs(err, 409) && !httpretry.IsDropped(err) {
		return err
	}
	img, gerr := images.Get(ctx, ic, id).Extract()
	if gerr == nil && img.Status == images.ImageStatusActive {
		return nil
	}
	return err
}
