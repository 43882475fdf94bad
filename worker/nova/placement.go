package nova

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"xcatbm/internal/config"
	"xcatbm/internal/httpretry"
)

// Placement is a small client of the placement API: the calls nova-compute makes for
// its resource providers and the allocation delete on terminate. It is safe for
// concurrent use.
//
// Placement is often served by uwsgi, which closes every connection after its
// answer without saying so; requests are therefore sent through an
// httpretry.Transport, which resends GET, PUT and DELETE on a fresh connection when
// a kept one was closed under them. The one POST, CreateProvider, checks by uuid
// whether a request whose answer was lost created the provider.
type Placement struct {
	// URL is the placement endpoint (http://host:8778).
	URL string
	// Token is sent as X-Auth-Token.
	Token config.Secret
	// HTTP is the client used (default: 30 s timeout). Its transport is wrapped in an
	// httpretry.Transport unless it is one.
	HTTP *http.Client

	once   sync.Once
	client *http.Client
}

// httpClient returns the client requests go through.
func (p *Placement) httpClient() *http.Client {
	p.once.Do(func() {
		switch {
		case p.HTTP == nil:
			p.client = httpretry.Client(nil, 30*time.Second)
		default:
			c := *p.HTTP
			if _, ok := c.Transport.(*httpretry.Transport); !ok {
				c.Transport = httpretry.New(c.Transport)
			}
			p.client = &c
		}
	})
	return p.client
}

// ErrConflict is returned for a 409 (a generation conflict: re-read and retry).
var ErrConflict = errors.New("placement: conflict")

// HTTPError is a placement answer other than the one expected.
type HTTPError struct {
	Method, Path string
	Status       int
	Body         string
}

// Error gives the request, placement's status and its message.
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
	resp, err := p.httpClient().Do(req)
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

// ErrNameTaken is CreateProvider's error when another provider (another uuid) has
// the name.
var ErrNameTaken = errors.New("placement: resource provider name taken by another provider")

// createAttempts bounds CreateProvider's POSTs.
const createAttempts = 3

// CreateProvider creates a root provider with uuid and name, and returns it. When
// the connection breaks before the answer (the server may have created it) or
// placement answers 409 (a provider with that uuid or name exists), it looks the
// uuid up: a provider found is the one asked for, and is returned; when none is
// found after a conflict, the name belongs to another provider (ErrNameTaken); after
// a broken connection, the POST is sent again.
func (p *Placement) CreateProvider(ctx context.Context, uuid, name string) (*Provider, error) {
	var err error
	for range createAttempts {
		var out Provider
		_, err = p.do(ctx, http.MethodPost, "/resource_providers", "1.20", map[string]string{"uuid": uuid, "name": name}, &out, 200)
		if err == nil {
			return &out, nil
		}
		conflict := errors.Is(err, ErrConflict)
		if !conflict && !httpretry.IsDropped(err) {
			return nil, err
		}
		rp, lerr := p.Provider(ctx, uuid)
		if lerr != nil {
			return nil, fmt.Errorf("%w (then looking up %s: %v)", err, uuid, lerr)
		}
		if rp != nil {
			return rp, nil
		}
		if conflict {
			return nil, fmt.Errorf("%w: %q (create %s: %v)", ErrNameTaken, name, uuid, err)
		}
	}
	return nil, err
}

// ProviderSpec is what a resource provider must be: its uuid and name, exactly this
// inventory, and at least these traits.
type ProviderSpec struct {
	UUID, Name string
	Inventory  map[string]Inventory
	Traits     []string
	// ClassesExist says the caller made sure the inventory's custom resource classes
	// exist (once for many providers), so EnsureProvider does not.
	ClassesExist bool
	// New says the provider is not expected to exist (its compute node was just
	// created): EnsureProvider creates it without looking it up first. A provider
	// that exists all the same is found through the create's conflict.
	New bool
}

// ProviderResult says what EnsureProvider did.
type ProviderResult struct {
	// Created: the provider did not exist (or its creation's answer was lost).
	Created bool
	// InventorySet, TraitsSet: the inventory or traits were written.
	InventorySet, TraitsSet bool
	// Generation is the provider's generation after the writes.
	Generation int
}

// ProviderError is EnsureProvider's failure: what exists of the provider and which
// part failed.
type ProviderError struct {
	// Part is "resource provider", "resource class", "inventory" or "traits".
	Part string
	// Exists says the provider itself exists.
	Exists bool
	Err    error
}

// Error names the part of the resource provider that failed and why.
func (e *ProviderError) Error() string { return e.Part + ": " + e.Err.Error() }

// Unwrap returns the placement error.
func (e *ProviderError) Unwrap() error { return e.Err }

// generationRounds bounds the re-reads after generation conflicts (another writer,
// such as the scheduler's allocations, or an earlier attempt whose answer was lost).
const generationRounds = 3

// EnsureProvider makes the provider exist with spec's inventory (its custom resource
// classes created first) and spec's traits added to those it has, writing only what
// differs. A generation conflict (409) is answered by reading the provider again:
// when it already has what was asked (a write whose answer was lost), nothing is
// written; otherwise the write is repeated at the new generation. A failure is a
// *ProviderError.
func (p *Placement) EnsureProvider(ctx context.Context, spec ProviderSpec) (ProviderResult, error) {
	var res ProviderResult
	var rp *Provider
	var err error
	if !spec.New {
		if rp, err = p.Provider(ctx, spec.UUID); err != nil {
			return res, &ProviderError{Part: "resource provider", Err: err}
		}
	}
	// fresh: a provider this call created, still at its first generation (0), has
	// had nothing written: no inventory, no traits, so the first writes go out
	// without reading them first (a write at a stale generation is refused, 409).
	fresh := false
	if rp == nil {
		if rp, err = p.CreateProvider(ctx, spec.UUID, spec.Name); err != nil {
			return res, &ProviderError{Part: "resource provider", Err: err}
		}
		res.Created, fresh = true, rp.Generation == 0
	}
	if !spec.ClassesExist {
		classes := make([]string, 0, len(spec.Inventory))
		for rc := range spec.Inventory {
			classes = append(classes, rc)
		}
		slices.Sort(classes)
		for _, rc := range classes {
			if !strings.HasPrefix(rc, "CUSTOM_") {
				continue
			}
			if err := p.EnsureResourceClass(ctx, rc); err != nil {
				return res, &ProviderError{Part: "resource class", Exists: true, Err: err}
			}
		}
	}
	gen := rp.Generation
	for round := 1; ; round++ {
		var have map[string]Inventory
		if !fresh || round > 1 {
			have, gen, err = p.Inventories(ctx, spec.UUID)
			if err != nil {
				return res, &ProviderError{Part: "inventory", Exists: true, Err: err}
			}
		}
		res.Generation = gen
		if sameInventory(have, spec.Inventory) {
			break
		}
		gen, err = p.SetInventories(ctx, spec.UUID, gen, spec.Inventory)
		if err == nil {
			res.InventorySet, res.Generation = true, gen
			break
		}
		if !errors.Is(err, ErrConflict) || round == generationRounds {
			return res, &ProviderError{Part: "inventory", Exists: true, Err: err}
		}
	}
	for round := 1; ; round++ {
		var traits []string
		if !fresh || round > 1 {
			traits, gen, err = p.Traits(ctx, spec.UUID)
			if err != nil {
				return res, &ProviderError{Part: "traits", Exists: true, Err: err}
			}
		} else {
			gen = res.Generation
		}
		res.Generation = max(res.Generation, gen)
		var missing []string
		for _, tr := range spec.Traits {
			if !slices.Contains(traits, tr) {
				missing = append(missing, tr)
			}
		}
		if len(missing) == 0 {
			break
		}
		gen, err = p.SetTraits(ctx, spec.UUID, gen, append(traits, missing...))
		if err == nil {
			res.TraitsSet, res.Generation = true, gen
			break
		}
		if !errors.Is(err, ErrConflict) || round == generationRounds {
			return res, &ProviderError{Part: "traits", Exists: true, Err: err}
		}
	}
	return res, nil
}

// sameInventory reports whether two inventories are equal (nil and empty alike).
func sameInventory(a, b map[string]Inventory) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
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
