package nova_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"xcatbm/internal/config"
	"xcatbm/internal/testkit/testhttp"
	"xcatbm/worker/nova"
)

// fakePlacement answers the placement requests xcatbm makes, with placement's
// generations and conflicts, from memory.
type fakePlacement struct {
	mu        sync.Mutex
	providers map[string]*fakeProvider // by uuid
	classes   map[string]bool
	allocs    map[string]bool // consumers with allocations
	// conflictNext makes the next inventory or traits PUT of a provider fail with 409
	// after bumping its generation, as a concurrent allocation write does.
	conflictNext bool
}

type fakeProvider struct {
	Name        string
	Generation  int
	Inventories map[string]nova.Inventory
	Traits      []string
}

func newFakePlacement() *fakePlacement {
	return &fakePlacement{providers: map[string]*fakeProvider{}, classes: map[string]bool{}, allocs: map[string]bool{}}
}

func (f *fakePlacement) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	answer := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		if v != nil {
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	fail := func(status int, msg string) {
		answer(status, map[string]any{"errors": []map[string]any{{"status": status, "detail": msg}}})
	}
	if r.Header.Get("X-Auth-Token") != "admin:admin" || !strings.HasPrefix(r.Header.Get("OpenStack-API-Version"), "placement 1.") {
		fail(401, "no token or microversion")
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	var body map[string]json.RawMessage
	_ = json.NewDecoder(r.Body).Decode(&body)
	generation := func() (int, bool) {
		var g int
		return g, json.Unmarshal(body["resource_provider_generation"], &g) == nil
	}
	switch {
	case r.Method == "POST" && len(parts) == 1 && parts[0] == "resource_providers":
		var uuid, name string
		_ = json.Unmarshal(body["uuid"], &uuid)
		_ = json.Unmarshal(body["name"], &name)
		for u, p := range f.providers {
			if u == uuid || p.Name == name {
				fail(409, "Conflicting resource provider name or uuid")
				return
			}
		}
		f.providers[uuid] = &fakeProvider{Name: name, Inventories: map[string]nova.Inventory{}}
		answer(200, map[string]any{"uuid": uuid, "name": name, "generation": 0})
	case parts[0] == "resource_providers" && len(parts) >= 2:
		p := f.providers[parts[1]]
		if p == nil {
			fail(404, "No resource provider with uuid "+parts[1])
			return
		}
		switch {
		case len(parts) == 2 && r.Method == "GET":
			answer(200, map[string]any{"uuid": parts[1], "name": p.Name, "generation": p.Generation})
		case len(parts) == 3 && parts[2] == "inventories" && r.Method == "GET":
			answer(200, map[string]any{"inventories": p.Inventories, "resource_provider_generation": p.Generation})
		case len(parts) == 3 && parts[2] == "traits" && r.Method == "GET":
			answer(200, map[string]any{"traits": p.Traits, "resource_provider_generation": p.Generation})
		case len(parts) == 3 && r.Method == "PUT":
			g, ok := generation()
			if !ok || g != p.Generation || f.conflictNext {
				if f.conflictNext {
					f.conflictNext = false
					p.Generation++
				}
				fail(409, "resource provider generation conflict")
				return
			}
			switch parts[2] {
			case "inventories":
				var inv map[string]nova.Inventory
				_ = json.Unmarshal(body["inventories"], &inv)
				for rc := range inv {
					if strings.HasPrefix(rc, "CUSTOM_") && !f.classes[rc] {
						fail(400, "Unknown resource class "+rc)
						return
					}
				}
				p.Inventories = inv
				p.Generation++
				answer(200, map[string]any{"inventories": inv, "resource_provider_generation": p.Generation})
			case "traits":
				_ = json.Unmarshal(body["traits"], &p.Traits)
				p.Generation++
				answer(200, map[string]any{"traits": p.Traits, "resource_provider_generation": p.Generation})
			default:
				fail(404, "no such resource")
			}
		default:
			fail(405, "method not allowed")
		}
	case r.Method == "PUT" && len(parts) == 2 && parts[0] == "resource_classes":
		if f.classes[parts[1]] {
			answer(204, nil)
			return
		}
		f.classes[parts[1]] = true
		answer(201, nil)
	case r.Method == "DELETE" && len(parts) == 2 && parts[0] == "allocations":
		if !f.allocs[parts[1]] {
			fail(404, "No allocations for consumer")
			return
		}
		delete(f.allocs, parts[1])
		answer(204, nil)
	default:
		fail(404, "not found")
	}
}

func (f *fakePlacement) provider(uuid string) (fakeProvider, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.providers[uuid]
	if !ok {
		return fakeProvider{}, false
	}
	return *p, true
}

const (
	rpUUID = "6b4a2b9e-1c55-5d2a-9a51-4f3c2e7d8a10"
	rpName = "node01"
)

var wantInventory = map[string]nova.Inventory{"CUSTOM_BAREMETAL_GOLD": {Total: 1, MinUnit: 1, MaxUnit: 1, StepSize: 1, AllocationRatio: 1}}

// TestEnsureProviderKeptConnectionsClosed registers a node's resource provider
// against a placement that, like placement under uwsgi, closes every connection
// after its answer. Every request that goes out on a kept connection is dropped
// unread; in some cases the server also acts on a request and loses its answer.
// The provider must end with its inventory and trait, each write made once.
func TestEnsureProviderKeptConnectionsClosed(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(f *fakePlacement)
		lose  func(r *http.Request, n int) bool
		// classesExist: the caller made the resource class (ProviderSpec.ClassesExist);
		// new: its compute node was just created (ProviderSpec.New).
		classesExist, new bool
		// want is the sequence of requests the fake placement ran.
		want    []string
		wantErr error
	}{
		{
			// A provider just created (generation 0) has nothing to read: its
			// inventory and traits are written straight away.
			name: "every kept connection closed",
			want: []string{"GET /resource_providers/" + rpUUID, "POST /resource_providers", "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"PUT /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name:         "resource class made by the caller",
			setup:        func(f *fakePlacement) { f.classes["CUSTOM_BAREMETAL_GOLD"] = true },
			classesExist: true,
			want: []string{"GET /resource_providers/" + rpUUID, "POST /resource_providers",
				"PUT /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "provider of a compute node just created: no lookup first",
			new:  true,
			want: []string{"POST /resource_providers", "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"PUT /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "said new but left by an earlier compute node: found through the conflict, its inventory read",
			new:  true,
			setup: func(f *fakePlacement) {
				f.providers[rpUUID] = &fakeProvider{Name: rpName, Generation: 2, Inventories: map[string]nova.Inventory{}, Traits: []string{"COMPUTE_NODE"}}
			},
			want: []string{"POST /resource_providers", "GET /resource_providers/" + rpUUID, "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"GET /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/inventories",
				"GET /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "create acted on, answer lost",
			lose: func(r *http.Request, n int) bool { return r.Method == "POST" },
			want: []string{"GET /resource_providers/" + rpUUID, "POST /resource_providers", "GET /resource_providers/" + rpUUID,
				"PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"PUT /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "inventory written, answer lost: the resent PUT conflicts and a re-read shows it done",
			lose: func(r *http.Request, n int) bool {
				return r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/inventories") && n == 1
			},
			want: []string{"GET /resource_providers/" + rpUUID, "POST /resource_providers", "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"PUT /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/inventories",
				"GET /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "traits written, answer lost: the resent PUT conflicts and a re-read shows them set",
			lose: func(r *http.Request, n int) bool {
				return r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/traits") && n == 1
			},
			want: []string{"GET /resource_providers/" + rpUUID, "POST /resource_providers", "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"PUT /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/traits",
				"PUT /resource_providers/" + rpUUID + "/traits", "GET /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "generation moved by another writer: re-read and write again",
			setup: func(f *fakePlacement) {
				f.providers[rpUUID] = &fakeProvider{Name: rpName, Generation: 4, Inventories: map[string]nova.Inventory{}}
				f.conflictNext = true
			},
			want: []string{"GET /resource_providers/" + rpUUID, "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD",
				"GET /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/inventories",
				"GET /resource_providers/" + rpUUID + "/inventories", "PUT /resource_providers/" + rpUUID + "/inventories",
				"GET /resource_providers/" + rpUUID + "/traits", "PUT /resource_providers/" + rpUUID + "/traits"},
		},
		{
			name: "name taken by another provider",
			setup: func(f *fakePlacement) {
				f.providers["0dd0a9b0-0000-4000-8000-000000000001"] = &fakeProvider{Name: rpName, Inventories: map[string]nova.Inventory{}}
			},
			lose:    func(*http.Request, int) bool { return false },
			wantErr: nova.ErrNameTaken,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakePlacement()
			if c.setup != nil {
				c.setup(f)
			}
			srv := testhttp.Start(t, testhttp.Config{Handler: f, LoseAnswer: c.lose})
			p := &nova.Placement{URL: srv.URL, Token: config.NewSecret("admin:admin")}
			res, err := p.EnsureProvider(context.Background(), nova.ProviderSpec{UUID: rpUUID, Name: rpName, Inventory: wantInventory, Traits: []string{"COMPUTE_NODE"}, ClassesExist: c.classesExist, New: c.new})
			if srv.Dropped() == 0 {
				t.Errorf("no request went out on a kept connection: the test did not expose the client")
			}
			if c.wantErr != nil {
				var pe *nova.ProviderError
				if !errors.Is(err, c.wantErr) || !errors.As(err, &pe) || pe.Part != "resource provider" || pe.Exists {
					t.Fatalf("err %v, want %v in a *ProviderError for the resource provider", err, c.wantErr)
				}
				if _, ok := f.provider(rpUUID); ok {
					t.Errorf("provider %s created despite the name conflict", rpUUID)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureProvider: %v\nrequests: %v", err, srv.Requests())
			}
			rp, ok := f.provider(rpUUID)
			if !ok || rp.Name != rpName || !slices.Equal(rp.Traits, []string{"COMPUTE_NODE"}) || len(rp.Inventories) != 1 ||
				rp.Inventories["CUSTOM_BAREMETAL_GOLD"] != wantInventory["CUSTOM_BAREMETAL_GOLD"] {
				t.Fatalf("provider in placement: %+v (exists %v)", rp, ok)
			}
			if res.Generation != rp.Generation {
				t.Errorf("result generation %d, placement has %d", res.Generation, rp.Generation)
			}
			if got := srv.Handled(); !slices.Equal(got, c.want) {
				t.Errorf("placement ran\n  %s\nwant\n  %s\nall requests: %v", strings.Join(got, "\n  "), strings.Join(c.want, "\n  "), srv.Requests())
			}

			// Run again: nothing is written, whatever the connections do.
			before := len(srv.Handled())
			if _, err := p.EnsureProvider(context.Background(), nova.ProviderSpec{UUID: rpUUID, Name: rpName, Inventory: wantInventory, Traits: []string{"COMPUTE_NODE"}}); err != nil {
				t.Fatalf("second EnsureProvider: %v", err)
			}
			for _, r := range srv.Handled()[before:] {
				if !strings.HasPrefix(r, "GET ") && r != "PUT /resource_classes/CUSTOM_BAREMETAL_GOLD" {
					t.Errorf("second run wrote %s", r)
				}
			}
		})
	}
}

// TestDeleteAllocationsKeptConnectionClosed: a DELETE dropped on a kept connection
// is resent, and one acted on whose answer was lost is resent and answered 404,
// which is what the caller wanted.
func TestDeleteAllocationsKeptConnectionClosed(t *testing.T) {
	for _, lose := range []bool{false, true} {
		f := newFakePlacement()
		f.allocs["inst-1"], f.allocs["inst-2"] = true, true
		srv := testhttp.Start(t, testhttp.Config{Handler: f, LoseAnswer: func(r *http.Request, n int) bool { return lose && n == 1 }})
		p := &nova.Placement{URL: srv.URL, Token: config.NewSecret("admin:admin")}
		for _, c := range []string{"inst-1", "inst-2"} {
			if err := p.DeleteAllocations(context.Background(), c); err != nil {
				t.Fatalf("lose %v: DeleteAllocations %s: %v (requests %v)", lose, c, err, srv.Requests())
			}
		}
		if len(f.allocs) != 0 || srv.Dropped() == 0 {
			t.Errorf("lose %v: allocations left %v, dropped %d, requests %v", lose, f.allocs, srv.Dropped(), srv.Requests())
		}
	}
}
