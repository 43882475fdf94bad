package nova

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"xcatbm/internal/config"
)

// Placement is a small client of the placement API: the calls nova-compute makes for
// its resource providers and the allocation delete on terminate.
type Placement struct {
	// URL is the placement endpoint (http://host:8778).
	URL string
	// Token is sent as X-Auth-Token.
	Token config.Secret
	// HTTP is the client used (default: 30 s timeout).
	HTTP *http.Client
}

// ErrConflict is returned for a 409 (a generation conflict: re-read and retry).
var ErrConflict = errors.New("placement: conflict")

// HTTPError is a placement answer other than the one expected.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("placement %s %s: %d %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// Is matches ErrConflict on a 409.
func (e *HTTPError) Is(target error) bool {
	return target == ErrConflict && e.Status == http.StatusConflict
}

// do sends one request with the microversion and decodes a JSON answer into out. A
// 404 is returned as an *HTTPError; want lists the accepted statuses.
func (p *Placement) do(ctx context.Context, method, path, microversion string, in, out any, want ...int) (int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(p.URL, "/")+path, body)
	if err != nil {
		return 0, err
	}
	req.Header.Set("X-Auth-Token", p.Token.Reveal())
	req.Header.Set("OpenStack-API-Version", "placement "+microversion)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := p.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("placement %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	ok := false
	for _, s := range want {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		return resp.StatusCode, &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Body: string(raw)}
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("placement %s %s: decode: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// Provider is a resource provider as placement reports it.
type Provider struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	Generation int    `json:"generation"`
}

// Inventory is one resource class's inventory record.
type Inventory struct {
	Total           int     `json:"total"`
	Reserved        int     `json:"reserved"`
	MinUnit         int     `json:"min_unit"`
	MaxUnit         int     `json:"max_unit"`
	StepSize        int     `json:"step_size"`
	AllocationRatio float64 `json:"allocation_ratio"`
}

// Provider returns the provider with uuid, or nil when there is none.
func (p *Placement) Provider(ctx context.Context, uuid string) (*Provider, error) {
	var out Provider
	st, err := p.do(ctx, http.MethodGet, "/resource_providers/"+uuid, "1.14", nil, &out, 200, 404)
	if err != nil {
		return nil, err
	}
	if st == 404 {
		return nil, nil
	}
	return &out, nil
}

// CreateProvider creates a root provider.
func (p *Placement) CreateProvider(ctx context.Context, uuid, name string) (*Provider, error) {
	var out Provider
	if _, err := p.do(ctx, http.MethodPost, "/resource_providers", "1.20", map[string]string{"uuid": uuid, "name": name}, &out, 200); err != nil {
		return nil, err
	}
	return &out, nil
}

// Inventories returns a provider's inventories and its generation.
func (p *Placement) Inventories(ctx context.Context, uuid string) (map[string]Inventory, int, error) {
	var out struct {
		Inventories map[string]Inventory `json:"inventories"`
		Generation  int                  `json:"resource_provider_generation"`
	}
	if _, err := p.do(ctx, http.MethodGet, "/resource_providers/"+uuid+"/inventories", "1.26", nil, &out, 200); err != nil {
		return nil, 0, err
	}
	return out.Inventories, out.Generation, nil
}

// SetInventories replaces a provider's inventories at generation and returns the new
// generation.
func (p *Placement) SetInventories(ctx context.Context, uuid string, generation int, inv map[string]Inventory) (int, error) {
	var out struct {
		Generation int `json:"resource_provider_generation"`
	}
	_, err := p.do(ctx, http.MethodPut, "/resource_providers/"+uuid+"/inventories", "1.26",
		map[string]any{"inventories": inv, "resource_provider_generation": generation}, &out, 200)
	return out.Generation, err
}

// Traits returns a provider's traits and its generation.
func (p *Placement) Traits(ctx context.Context, uuid string) ([]string, int, error) {
	var out struct {
		Traits     []string `json:"traits"`
		Generation int      `json:"resource_provider_generation"`
	}
	if _, err := p.do(ctx, http.MethodGet, "/resource_providers/"+uuid+"/traits", "1.6", nil, &out, 200); err != nil {
		return nil, 0, err
	}
	return out.Traits, out.Generation, nil
}

// SetTraits replaces a provider's traits at generation and returns the new generation.
func (p *Placement) SetTraits(ctx context.Context, uuid string, generation int, traits []string) (int, error) {
	var out struct {
		Generation int `json:"resource_provider_generation"`
	}
	_, err := p.do(ctx, http.MethodPut, "/resource_providers/"+uuid+"/traits", "1.6",
		map[string]any{"traits": traits, "resource_provider_generation": generation}, &out, 200)
	return out.Generation, err
}

// EnsureResourceClass creates a custom resource class (CUSTOM_...) when missing.
func (p *Placement) EnsureResourceClass(ctx context.Context, name string) error {
	_, err := p.do(ctx, http.MethodPut, "/resource_classes/"+name, "1.7", nil, nil, 201, 204)
	return err
}

// DeleteAllocations removes the allocations of a consumer (an instance); a consumer
// without allocations is not an error.
func (p *Placement) DeleteAllocations(ctx context.Context, consumer string) error {
	_, err := p.do(ctx, http.MethodDelete, "/allocations/"+consumer, "1.28", nil, nil, 204, 404)
	return err
}

// ProviderUsages returns the usages of a provider by resource class.
func (p *Placement) ProviderUsages(ctx context.Context, uuid string) (map[string]int, error) {
	var out struct {
		Usages map[string]int `json:"usages"`
	}
	if _, err := p.do(ctx, http.MethodGet, "/resource_providers/"+uuid+"/usages", "1.9", nil, &out, 200); err != nil {
		return nil, err
	}
	return out.Usages, nil
}

// ResourceClass normalizes a node's resource class to placement's custom name the way
// nova's ironic driver does: upper case, every character outside [A-Z0-9_] becomes
// "_", prefixed CUSTOM_ ("baremetal-gold" → "CUSTOM_BAREMETAL_GOLD"). Empty is
// "CUSTOM_BAREMETAL".
func ResourceClass(rc string) string {
	if rc == "" {
		rc = "baremetal"
	}
	up := strings.ToUpper(rc)
	var b strings.Builder
	for _, r := range up {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if strings.HasPrefix(s, "CUSTOM_") {
		return s
	}
	return "CUSTOM_" + s
}
