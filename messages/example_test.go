package messages_test

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"xcatbm/messages"
)

// Decode the build_and_run_instance cast nova sends to a compute host and build the
// instance.create.end notification xcatbm publishes once the node is deployed.
func Example() {
	data, err := os.ReadFile("testdata/cast-build_and_run_instance.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	var vector struct{ Body string }
	if err := json.Unmarshal(data, &vector); err != nil {
		fmt.Println(err)
		return
	}

	req, err := messages.DecodeRequest([]byte(vector.Body))
	if err != nil {
		fmt.Println(err)
		return
	}
	build, err := req.BuildAndRunInstance()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("method:", req.Method, req.Version, "cast:", !req.IsCall())
	fmt.Println("instance:", build.Instance.UUID, "on node", build.Node)
	fmt.Println("xCAT image:", build.Image.XCATImageName())
	fmt.Println("admin password:", build.AdminPassword, "auth token:", req.Context.AuthToken())

	versioned, legacy, err := messages.NewInstanceNotifications(messages.NotifyInput{
		Instance:   build.Instance,
		Host:       "xcat-mn1",
		Action:     "create",
		Phase:      "end",
		VMState:    "active",
		PowerState: messages.Running,
		Time:       time.Date(2026, 11, 25, 2, 41, 0, 123456000, time.UTC),
		Context:    req.Context,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	body, err := versioned.Encode()
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := messages.DecodeNotification(body)
	if err != nil {
		fmt.Println(err)
		return
	}
	var payload struct {
		Name string          `json:"nova_object.name"`
		Ver  string          `json:"nova_object.version"`
		Data json.RawMessage `json:"nova_object.data"`
	}
	_ = json.Unmarshal(n.Payload, &payload)
	var d struct {
		State      string `json:"state"`
		PowerState string `json:"power_state"`
		LaunchedAt string `json:"launched_at"`
	}
	_ = json.Unmarshal(payload.Data, &d)
	_, hasToken := n.Context.Get("auth_token")

	fmt.Println(versioned.RoutingKey(), n.PublisherID, n.EventType, n.Priority)
	fmt.Println("payload:", payload.Name, payload.Ver, d.State, d.PowerState, d.LaunchedAt)
	fmt.Println("timestamp:", messages.FormatTimestamp(n.Timestamp), "auth_token sent:", hasToken)
	fmt.Println(legacy.RoutingKey(), legacy.PublisherID, legacy.EventType)
	// Output:
	// method: build_and_run_instance 6.0 cast: true
	// instance: 0b7a9b1c-3f3e-4c55-9d3a-6c1f5a2e7d10 on node n01
	// xCAT image: rhels9.4-x86_64-install-compute
	// admin password:  auth token: [REDACTED]
	// versioned_notifications.info nova-compute:xcat-mn1 instance.create.end INFO
	// payload: InstanceCreatePayload 1.13 active running 2026-11-25T02:41:00Z
	// timestamp: 2026-11-25 02:41:00.123456 auth_token sent: false
	// notifications.info compute.xcat-mn1 compute.instance.create.end
}
