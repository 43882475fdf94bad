package cloud

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestServiceMessage(t *testing.T) {
	for body, want := range map[string]string{
		`{"NeutronError": {"type": "NetworkNotFound", "message": "Network x could not be found.", "detail": ""}}`:  "Network x could not be found.",
		`{"badRequest": {"code": 400, "message": "Invalid input"}}`:                                                "Invalid input",
		"<html><head><title>409 Conflict</title></head><body><h1>409 Conflict</h1>Image name taken.</body></html>": "409 Conflict 409 Conflict Image name taken.",
		"": "(no message)",
	} {
		if got := serviceMessage([]byte(body)); got != want {
			t.Errorf("serviceMessage(%q) = %q, want %q", body, got, want)
		}
	}
}

func FuzzServiceMessage(f *testing.F) {
	f.Add(`{"NeutronError": {"message": "m"}}`)
	f.Add("<html><body>x</body></html>")
	f.Add(`[[[[[[[[[[{"message": 1}]]]]]]]]]]`)
	f.Fuzz(func(t *testing.T, body string) {
		if m := serviceMessage([]byte(body)); m == "" || len([]rune(m)) > maxMessage+1 {
			t.Errorf("serviceMessage(%q) = %q", body, m)
		}
	})
}

func TestOpenRefusals(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "clouds.yaml")
	if err := os.WriteFile(file, []byte("clouds:\n  plane:\n    auth_type: none\n    image_endpoint_override: http://127.0.0.1:9/\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) (string, bool) { return "", false }
	ctx := context.Background()
	if _, err := Open(ctx, Options{File: file, Name: "prod", Getenv: noEnv}); !errors.Is(err, ErrNoCloud) || !strings.Contains(err.Error(), "it has: plane") {
		t.Errorf("unknown cloud: %v", err)
	}
	if _, err := Open(ctx, Options{Getenv: noEnv}); !errors.Is(err, ErrNoCloud) {
		t.Errorf("no cloud at all: %v", err)
	}
	c, err := Open(ctx, Options{File: file, Name: "plane", Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	ic, err := c.Image()
	if err != nil || ic.ResourceBase != "http://127.0.0.1:9/v2/" {
		t.Errorf("image client: %v %+v", err, ic)
	}
	if _, err := c.Network(); !errors.Is(err, ErrNoEndpoint) {
		t.Errorf("network without override: %v", err)
	}
}
