// Package cloud opens OpenStack service clients (image, network) from clouds.yaml and
// OS_* variables, the way every OpenStack tool finds its cloud.
//
// The clouds.yaml file is FILE when given, else $OS_CLIENT_CONFIG_FILE, else the first
// of ./clouds.yaml, ~/.config/openstack/clouds.yaml and /etc/openstack/clouds.yaml. The
// cloud name is NAME when given, else $OS_CLOUD. With no name and no file, the OS_*
// variables (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, ...) describe the
// cloud; the name "envvars" asks for them explicitly.
//
// Keystone clouds (auth_type password, token, v3applicationcredential, or none given)
// are read by gophercloud's config/clouds and authenticated against Keystone; the
// service endpoints come from the catalog.
//
// Clouds without Keystone (test planes, standalone services) are entries with
// auth_type "none" or "admin_token" and per-service endpoint overrides, as
// openstacksdk writes them:
//
//	clouds:
//	  plane:
//	    auth_type: admin_token       # or none
//	    auth:
//	      token: admin:admin         # sent as X-Auth-Token (admin_token only)
//	    image_endpoint_override: http://127.0.0.1:9292
//	    network_endpoint_override: http://127.0.0.1:9696
//
// An <service>_endpoint_override also overrides the catalog of a Keystone cloud.
// Passwords and tokens are never part of an error message.
//
// Every client sends through an httpretry.Transport: services served by uwsgi close
// each connection after its answer, and GET, PUT and DELETE are resent on a fresh
// connection when a kept one was closed under them; a POST or PATCH goes out on a
// connection of its own, and when that breaks before the answer the caller gets an
// httpretry.DroppedError and checks what the service did (see Create).
package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"
	"gopkg.in/yaml.v3"

	"xcatbm/internal/httpretry"
)

// Options say where to find the cloud.
type Options struct {
	// File is the clouds.yaml path; "" searches the usual places.
	File string
	// Name is the cloud's entry in clouds.yaml; "" takes $OS_CLOUD.
	Name string
	// Getenv reads the environment (nil: os.LookupEnv).
	Getenv func(string) (string, bool)
	// Timeout bounds each HTTP request (default 60s).
	Timeout time.Duration
}

// Errors callers may test for.
var (
	// ErrNoCloud: the named cloud is not in clouds.yaml, or no clouds.yaml was found.
	ErrNoCloud = errors.New("cloud not configured")
	// ErrNoEndpoint: the cloud has no endpoint for the service.
	ErrNoEndpoint = errors.New("no endpoint for the service")
)

// Cloud is an opened cloud: a provider client and where its services are.
type Cloud struct {
	// Name is the cloud's clouds.yaml entry ("envvars" for OS_* variables).
	Name      string
	provider  *gophercloud.ProviderClient
	endpoint  gophercloud.EndpointOpts
	overrides map[string]string
	keystone  bool
}

// entry is the part of a clouds.yaml entry this package reads itself.
type entry struct {
	AuthType string `yaml:"auth_type"`
	Auth     struct {
		Token string `yaml:"token"`
	} `yaml:"auth"`
	Rest map[string]any `yaml:",inline"`
}

// Open finds the cloud and, for a Keystone cloud, authenticates.
func Open(ctx context.Context, o Options) (*Cloud, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.LookupEnv
	}
	env := func(k string) string { v, _ := getenv(k); return v }
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	name := o.Name
	if name == "" {
		name = env("OS_CLOUD")
	}
	file := o.File
	if file == "" {
		file = env("OS_CLIENT_CONFIG_FILE")
	}
	if file == "" && name != "" && name != "envvars" {
		file = findFile(env)
	}
	httpClient := http.Client{Timeout: o.Timeout, Transport: httpretry.New(nil)}
	if name == "" || name == "envvars" {
		return openEnv(ctx, env, httpClient)
	}
	if file == "" {
		return nil, fmt.Errorf("%w: no clouds.yaml found for cloud %q (looked in ./clouds.yaml, ~/.config/openstack/clouds.yaml, /etc/openstack/clouds.yaml)", ErrNoCloud, name)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCloud, err)
	}
	var doc struct {
		Clouds map[string]entry `yaml:"clouds"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	e, ok := doc.Clouds[name]
	if !ok {
		known := make([]string, 0, len(doc.Clouds))
		for k := range doc.Clouds {
			known = append(known, k)
		}
		return nil, fmt.Errorf("%w: cloud %q is not in %s (it has: %s)", ErrNoCloud, name, file, strings.Join(sorted(known), ", "))
	}
	c := &Cloud{Name: name, overrides: map[string]string{}}
	for k, v := range e.Rest {
		if svc, ok := strings.CutSuffix(k, "_endpoint_override"); ok {
			if s, ok := v.(string); ok && s != "" {
				c.overrides[svc] = strings.TrimRight(s, "/")
			}
		}
	}
	switch strings.ToLower(e.AuthType) {
	case "none", "noauth", "admin_token":
		c.provider = &gophercloud.ProviderClient{HTTPClient: httpClient}
		if e.Auth.Token != "" {
			c.provider.SetToken(e.Auth.Token)
		}
		return c, nil
	}
	ao, eo, tlsConf, err := clouds.Parse(clouds.WithCloudName(name), clouds.WithLocations(file))
	if err != nil {
		return nil, fmt.Errorf("cloud %q in %s: %w", name, file, err)
	}
	if tlsConf != nil {
		base := http.DefaultTransport.(*http.Transport).Clone()
		base.TLSClientConfig = tlsConf
		httpClient.Transport = httpretry.New(base)
	}
	pc, err := openstack.NewClient(ao.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("cloud %q: %w", name, err)
	}
	pc.HTTPClient = httpClient
	// Asking for a token twice does no harm: resend it like a GET.
	if err := openstack.Authenticate(httpretry.Idempotent(ctx), pc, ao); err != nil {
		return nil, fmt.Errorf("cloud %q: authenticate at %s: %w", name, ao.IdentityEndpoint, Describe(err))
	}
	c.provider, c.endpoint, c.keystone = pc, eo, true
	return c, nil
}

func openEnv(ctx context.Context, env func(string) string, httpClient http.Client) (*Cloud, error) {
	if env("OS_AUTH_URL") == "" {
		return nil, fmt.Errorf("%w: no cloud name given, OS_CLOUD unset and OS_AUTH_URL unset", ErrNoCloud)
	}
	ao, err := openstack.AuthOptionsFromEnv()
	if err != nil {
		return nil, fmt.Errorf("OS_* variables: %w", err)
	}
	pc, err := openstack.NewClient(ao.IdentityEndpoint)
	if err != nil {
		return nil, fmt.Errorf("OS_AUTH_URL: %w", err)
	}
	pc.HTTPClient = httpClient
	if err := openstack.Authenticate(httpretry.Idempotent(ctx), pc, ao); err != nil {
		return nil, fmt.Errorf("authenticate at %s: %w", ao.IdentityEndpoint, Describe(err))
	}
	return &Cloud{Name: "envvars", provider: pc, keystone: true, overrides: map[string]string{},
		endpoint: gophercloud.EndpointOpts{Region: env("OS_REGION_NAME"), Availability: availability(env("OS_INTERFACE"))}}, nil
}

func availability(s string) gophercloud.Availability {
	switch strings.TrimSuffix(strings.ToLower(s), "url") {
	case "internal":
		return gophercloud.AvailabilityInternal
	case "admin":
		return gophercloud.AvailabilityAdmin
	}
	return gophercloud.AvailabilityPublic
}

func findFile(env func(string) string) string {
	var dirs []string
	if wd, err := os.Getwd(); err == nil {
		dirs = append(dirs, wd)
	}
	if x := env("XDG_CONFIG_HOME"); x != "" {
		dirs = append(dirs, filepath.Join(x, "openstack"))
	} else if h := env("HOME"); h != "" {
		dirs = append(dirs, filepath.Join(h, ".config", "openstack"))
	}
	dirs = append(dirs, "/etc/openstack")
	for _, d := range dirs {
		p := filepath.Join(d, "clouds.yaml")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

// service returns a client of one service: its endpoint override, else the catalog's.
func (c *Cloud) service(typ, version string, fromCatalog func(*gophercloud.ProviderClient, gophercloud.EndpointOpts) (*gophercloud.ServiceClient, error)) (*gophercloud.ServiceClient, error) {
	if ep, ok := c.overrides[typ]; ok {
		base := ep + "/"
		if !strings.HasSuffix(ep, "/"+version) {
			base = ep + "/" + version + "/"
		}
		return &gophercloud.ServiceClient{ProviderClient: c.provider, Endpoint: ep + "/", ResourceBase: base, Type: typ}, nil
	}
	if !c.keystone {
		return nil, fmt.Errorf("%w: cloud %q has no %s_endpoint_override (auth_type none/admin_token has no catalog)", ErrNoEndpoint, c.Name, typ)
	}
	sc, err := fromCatalog(c.provider, c.endpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: cloud %q: %s: %v", ErrNoEndpoint, c.Name, typ, err)
	}
	return sc, nil
}

// Image returns a client of the image service (glance v2).
func (c *Cloud) Image() (*gophercloud.ServiceClient, error) {
	return c.service("image", "v2", openstack.NewImageV2)
}

// Network returns a client of the network service (neutron v2.0).
func (c *Cloud) Network() (*gophercloud.ServiceClient, error) {
	return c.service("network", "v2.0", openstack.NewNetworkV2)
}

// HasNetwork reports whether the cloud can give a network client.
func (c *Cloud) HasNetwork() bool {
	_, err := c.Network()
	return err == nil
}

// Describe turns a service error into "HTTP <status>: <the service's message>";
// other errors are returned as they are.
func Describe(err error) error {
	var ue gophercloud.ErrUnexpectedResponseCode
	if !errors.As(err, &ue) {
		return err
	}
	return &ServiceError{Status: ue.Actual, Method: ue.Method, URL: ue.URL, Message: serviceMessage(ue.Body)}
}

// ServiceError is an OpenStack service's refusal.
type ServiceError struct {
	Status      int
	Method, URL string
	// Message is the service's own message (its JSON error's message, or its body).
	Message string
}

// Error names the service, the request and the status it answered.
func (e *ServiceError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.URL, e.Status, e.Message)
}
