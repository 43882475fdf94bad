package novacast_test

import (
	"strings"
	"testing"

	"xcatbm/messages"
	"xcatbm/messages/novacast"
)

func TestBodyAdaptsEveryVector(t *testing.T) {
	t.Parallel()
	for _, v := range []string{novacast.Build, novacast.Terminate, novacast.Start, novacast.Stop, novacast.Reboot, novacast.ConsoleCall, novacast.StopCall} {
		body, err := novacast.Body(v, novacast.Spec{Node: "n42", UUID: "42424242-4242-4242-8242-424242424242", Hostname: "h42",
			Image: "img1", IP: "192.168.3.4", CIDR: "192.168.3.0/24", UniqueID: "u1", ReplyQueue: "reply_x", AuthToken: "tok"})
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		req, err := messages.DecodeRequest(body)
		if err != nil {
			t.Fatalf("%s: adapted body does not decode: %v", v, err)
		}
		inst, err := messages.DecodeInstance(req.Args["instance"])
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if inst.Node != "n42" || inst.UUID != "42424242-4242-4242-8242-424242424242" || inst.Hostname != "h42" || req.UniqueID != "u1" {
			t.Errorf("%s: node %q uuid %q hostname %q unique id %q", v, inst.Node, inst.UUID, inst.Hostname, req.UniqueID)
		}
		if req.Context.AuthToken().Reveal() != "tok" {
			t.Errorf("%s: auth token not set", v)
		}
		if req.IsCall() && req.ReplyQueue != "reply_x" {
			t.Errorf("%s: reply queue %q", v, req.ReplyQueue)
		}
		if v == novacast.Build {
			a, err := req.BuildAndRunInstance()
			if err != nil {
				t.Fatal(err)
			}
			if a.Node != "n42" || a.Image.XCATImageName() != "img1" || len(a.Instance.NetworkInfo) != 1 ||
				!strings.Contains(string(req.Args["instance"]), "192.168.3.4") {
				t.Errorf("build: node %q image %q network %v", a.Node, a.Image.XCATImageName(), a.Instance.NetworkInfo)
			}
		}
	}
	if _, err := novacast.Body("nosuch.json", novacast.Spec{}); err == nil {
		t.Error("an unknown vector gave no error")
	}
}
