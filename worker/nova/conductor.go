// Package nova makes an xcatbm worker stand in for nova-compute on nova's bus for the
// xCAT nodes it serves: it keeps the nova-compute service record alive, registers one
// compute node and one placement resource provider per xCAT node, and writes every
// instance state change through nova-conductor and placement exactly as a real
// nova-compute does (see NOVA.md of the project's shared notes for the contract).
//
// The pieces:
//
//   - Conductor: an oslo.messaging RPC client of nova-conductor (topic "conductor"):
//     ping, object_class_action_versions, object_action, and casts to the
//     scheduler's fanout. Remote exceptions come back as *RemoteError, which
//     matches ErrNotFound, ErrComputeHostNotFound, ErrUnexpectedTaskState with
//     errors.Is.
//   - Placement: a small HTTP client of the placement API (microversioned).
//   - Service: the nova-compute service record and its heartbeat, the compute node
//     and resource provider sync, and the loop that performs queued instance writes.
//   - Writer: the worker.NovaWriter that turns job events into queued writes
//     (store.NovaOp) in the same transaction as the job's transition.
package nova

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/rs/zerolog"

	"xcatbm/internal/broker"
	"xcatbm/messages"
)

// Sentinel errors a *RemoteError matches with errors.Is.
var (
	// ErrNotFound matches every nova "...NotFound" exception.
	ErrNotFound = errors.New("not found in nova")
	// ErrComputeHostNotFound matches ComputeHostNotFound (and its subclasses).
	ErrComputeHostNotFound = errors.New("compute host not found")
	// ErrInstanceNotFound matches InstanceNotFound.
	ErrInstanceNotFound = errors.New("instance not found")
	// ErrUnexpectedTaskState matches UnexpectedTaskStateError and
	// UnexpectedDeletingTaskStateError: the instance moved on (another writer, or
	// this write was already made).
	ErrUnexpectedTaskState = errors.New("unexpected task state")
	// ErrTimeout is returned when the conductor did not answer within the timeout
	// (oslo's MessagingTimeout).
	ErrTimeout = errors.New("conductor did not answer in time")
)

// RemoteError is an exception raised in nova-conductor, as its reply carried it.
type RemoteError struct {
	Class   string
	Module  string
	Message string
	Kwargs  map[string]any
}

// Error is the remote exception's class and message as the conductor sent them.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("conductor: %s.%s: %s", e.Module, e.Class, e.Message)
}

// Is matches the sentinel errors by exception class.
func (e *RemoteError) Is(target error) bool {
	c := strings.TrimSuffix(e.Class, "_Remote")
	switch target {
	case ErrNotFound:
		return strings.HasSuffix(c, "NotFound")
	case ErrComputeHostNotFound:
		return c == "ComputeHostNotFound" || c == "ComputeHostNotFoundByHost" || c == "ComputeHostNotFound_Remote"
	case ErrInstanceNotFound:
		return c == "InstanceNotFound"
	case ErrUnexpectedTaskState:
		return c == "UnexpectedTaskStateError" || c == "UnexpectedDeletingTaskStateError" || c == "UnexpectedVMStateError"
	}
	return false
}

// ConductorConfig configures a Conductor.
type ConductorConfig struct {
	// Conn is the supervised AMQP connection the client uses (one channel of it).
	Conn *broker.Conn
	// Exchange is the control exchange (default "nova"); Topic the conductor's topic
	// (default "conductor").
	Exchange string
	Topic    string
	// Timeout bounds one call (default 60 s, nova's rpc_response_timeout), sent as
	// the message expiration; PingTimeout bounds one ping (default 10 s).
	Timeout     time.Duration
	PingTimeout time.Duration
	// Attempts is how often a call that times out is sent again (default 3).
	Attempts int
	// Backoff paces attempts.
	Backoff broker.Backoff
	// ReplyTTL is the x-expires of the reply queue (default 1800 s).
	ReplyTTL time.Duration
	Log      zerolog.Logger
}

// Conductor is an oslo.messaging RPC client of nova-conductor. It is safe for
// concurrent use; Run must be running for calls to be answered.
type Conductor struct {
	cfg    ConductorConfig
	replyQ string

	mu      sync.Mutex
	ch      *amqp.Channel
	pending map[string]chan *messages.Reply
}

// NewConductor returns a client; calls work while Run runs.
func NewConductor(cfg ConductorConfig) *Conductor {
	if cfg.Exchange == "" {
		cfg.Exchange = "nova"
	}
	if cfg.Topic == "" {
		cfg.Topic = "conductor"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	if cfg.PingTimeout <= 0 {
		cfg.PingTimeout = 10 * time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 3
	}
	if cfg.Backoff.Min == 0 {
		cfg.Backoff = broker.Backoff{Min: 500 * time.Millisecond, Max: 10 * time.Second}
	}
	if cfg.ReplyTTL <= 0 {
		cfg.ReplyTTL = 1800 * time.Second
	}
	return &Conductor{cfg: cfg, replyQ: "reply_" + hexID(), pending: map[string]chan *messages.Reply{}}
}

func hexID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ReplyQueue is the name of this client's reply queue.
func (c *Conductor) ReplyQueue() string { return c.replyQ }

// Run keeps a channel with the reply queue consumed until ctx ends.
func (c *Conductor) Run(ctx context.Context) {
	broker.Supervise(ctx, c.cfg.Backoff, c.cfg.Log, "conductor client channel lost", c.session)
}

func (c *Conductor) session(ctx context.Context, up func()) error {
	conn, err := c.cfg.Conn.Get(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(c.replyQ, false, false, false, false,
		amqp.Table{"x-expires": int32(c.cfg.ReplyTTL.Milliseconds())}); err != nil {
		return fmt.Errorf("declare %s: %w", c.replyQ, err)
	}
	deliveries, err := ch.Consume(c.replyQ, "", true, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", c.replyQ, err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	c.mu.Lock()
	c.ch = ch
	c.mu.Unlock()
	up()
	defer func() {
		c.mu.Lock()
		c.ch = nil
		c.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-closed:
			return fmt.Errorf("channel closed: %v", e)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("reply consumer ended")
			}
			r, err := messages.DecodeReply(d.Body)
			if err != nil {
				c.cfg.Log.Warn().Err(err).Msg("undecodable reply dropped")
				continue
			}
			c.mu.Lock()
			w := c.pending[r.MsgID]
			c.mu.Unlock()
			if w == nil {
				c.cfg.Log.Debug().Str("msg_id", r.MsgID).Msg("reply to no waiting call (late or duplicate)")
				continue
			}
			select {
			case w <- r:
			default:
			}
		}
	}
}

// channel waits for the session's channel.
func (c *Conductor) channel(ctx context.Context) (*amqp.Channel, error) {
	for {
		c.mu.Lock()
		ch := c.ch
		c.mu.Unlock()
		if ch != nil {
			return ch, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// serviceContext is nova-compute's own admin request context, as captured.
func serviceContext(requestID string) *messages.Context {
	ctx := messages.NewContext()
	if requestID == "" {
		requestID = "req-" + uuid.NewString()
	}
	for k, v := range map[string]any{
		"is_admin": true, "is_admin_project": true, "read_deleted": "no", "read_only": false, "show_deleted": false,
		"request_id": requestID, "global_request_id": nil, "roles": []string{}, "service_catalog": []any{},
		"user_identity": "- - - - -", "timestamp": time.Now().UTC().Format("2006-01-02T15:04:05.000000"),
		"user": nil, "user_id": nil, "project": nil, "project_id": nil, "project_name": nil, "user_name": nil,
		"domain": nil, "user_domain": nil, "project_domain": nil, "system_scope": nil, "quota_class": nil,
		"remote_address": nil, "resource_uuid": nil,
	} {
		_ = ctx.Set(k, v)
	}
	_ = ctx.Set("auth_token", nil)
	return ctx
}

// CallOpts are the options of one call.
type CallOpts struct {
	// Namespace is the target namespace ("" for the conductor's, "baseapi" for ping).
	Namespace string
	// Version is the target version.
	Version string
	// Timeout overrides the client's call timeout.
	Timeout time.Duration
	// Context is the request context; nil uses a fresh nova-compute admin context.
	Context *messages.Context
	// Attempts overrides the client's attempts (1: no resend on timeout).
	Attempts int
}

// Call sends method with args to the conductor and returns the reply's result. A call
// that is not answered in time is sent again (a new _msg_id) up to the configured
// attempts, with backoff; remote exceptions are returned as *RemoteError and not
// retried.
func (c *Conductor) Call(ctx context.Context, method string, args map[string]any, o CallOpts) (json.RawMessage, error) {
	attempts := o.Attempts
	if attempts <= 0 {
		attempts = c.cfg.Attempts
	}
	var last error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(c.cfg.Backoff.Delay(i - 1)):
			}
		}
		res, err := c.callOnce(ctx, method, args, o)
		var re *RemoteError
		if err == nil || errors.As(err, &re) || ctx.Err() != nil {
			return res, err
		}
		last = err
		c.cfg.Log.Warn().Err(err).Str("method", method).Int("attempt", i+1).Msg("conductor call failed; retrying")
	}
	return nil, last
}

func (c *Conductor) callOnce(ctx context.Context, method string, args map[string]any, o CallOpts) (json.RawMessage, error) {
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	req := &messages.Request{Method: method, Version: o.Version, Namespace: o.Namespace, MsgID: hexID(), ReplyQueue: c.replyQ,
		Context: o.Context}
	if req.Context == nil {
		req.Context = serviceContext("")
	}
	for k, v := range args {
		if err := req.SetArg(k, v); err != nil {
			return nil, err
		}
	}
	body, err := messages.EncodeRequest(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	wait := make(chan *messages.Reply, 4)
	c.mu.Lock()
	c.pending[req.MsgID] = wait
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.pending, req.MsgID)
		c.mu.Unlock()
	}()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := c.publish(tctx, c.cfg.Exchange, c.cfg.Topic, messages.CallProperties(timeout), body); err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	for {
		select {
		case <-tctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("%s: %w after %s", method, ErrTimeout, timeout)
		case r := <-wait:
			if !r.Ending {
				continue // a call-monitor heartbeat
			}
			if f := r.Failure; f != nil {
				return nil, &RemoteError{Class: f.Class, Module: f.Module, Message: f.Message, Kwargs: f.Kwargs}
			}
			return r.Result, nil
		}
	}
}

func (c *Conductor) publish(ctx context.Context, exchange, key string, p messages.Properties, body []byte) error {
	ch, err := c.channel(ctx)
	if err != nil {
		return fmt.Errorf("no channel: %w", err)
	}
	return ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{
		ContentType: p.ContentType, ContentEncoding: p.ContentEncoding, DeliveryMode: p.DeliveryMode,
		Priority: p.Priority, Expiration: p.Expiration, Headers: amqp.Table(p.Headers), Body: body,
	})
}

// Cast sends method with args to exchange/routingKey without waiting (the scheduler
// fanout: exchange "scheduler_fanout", routing key "").
func (c *Conductor) Cast(ctx context.Context, exchange, routingKey, method, version string, args map[string]any, rctx *messages.Context) error {
	req := &messages.Request{Method: method, Version: version, Context: rctx}
	if req.Context == nil {
		req.Context = serviceContext("")
	}
	for k, v := range args {
		if err := req.SetArg(k, v); err != nil {
			return err
		}
	}
	body, err := messages.EncodeRequest(req)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if exchange == "scheduler_fanout" {
		// oslo declares the fanout exchange before publishing to it.
		ch, err := c.channel(ctx)
		if err != nil {
			return err
		}
		if err := ch.ExchangeDeclare(exchange, "fanout", false, true, false, false, nil); err != nil {
			return fmt.Errorf("declare %s: %w", exchange, err)
		}
	}
	return c.publish(ctx, exchange, routingKey, messages.CastProperties(), body)
}

// Ping waits until a conductor answers the baseapi ping, trying until ctx ends.
func (c *Conductor) Ping(ctx context.Context) error {
	for i := 0; ; i++ {
		_, err := c.Call(ctx, "ping", map[string]any{"arg": "1.21 GigaWatts"},
			CallOpts{Namespace: "baseapi", Version: "1.0", Timeout: c.cfg.PingTimeout, Attempts: 1})
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("ping conductor: %w", ctx.Err())
		}
		c.cfg.Log.Warn().Err(err).Msg("waiting for nova-conductor")
		select {
		case <-ctx.Done():
			return fmt.Errorf("ping conductor: %w", ctx.Err())
		case <-time.After(c.cfg.Backoff.Delay(i)):
		}
	}
}

// ObjectClassAction calls a class method of a nova object (object_class_action_versions
// v3.0) and returns its result.
func (c *Conductor) ObjectClassAction(ctx context.Context, objName, objMethod string, args []any, kwargs map[string]any) (json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	return c.Call(ctx, "object_class_action_versions", map[string]any{
		"objname": objName, "objmethod": objMethod, "object_versions": ObjectVersions(objName), "args": args, "kwargs": kwargs,
	}, CallOpts{Version: "3.0"})
}

// ObjectAction calls a method of a nova object instance (object_action v3.0): the
// conductor runs it and answers [updates, return value]; ObjectAction returns both.
func (c *Conductor) ObjectAction(ctx context.Context, obj *messages.Object, objMethod string, args []any, kwargs map[string]any, rctx *messages.Context) (map[string]json.RawMessage, json.RawMessage, error) {
	if args == nil {
		args = []any{}
	}
	if kwargs == nil {
		kwargs = map[string]any{}
	}
	res, err := c.Call(ctx, "object_action", map[string]any{"objinst": obj, "objmethod": objMethod, "args": args, "kwargs": kwargs},
		CallOpts{Version: "3.0", Context: rctx})
	if err != nil {
		return nil, nil, err
	}
	return decodeActionResult(res)
}

func decodeActionResult(res json.RawMessage) (map[string]json.RawMessage, json.RawMessage, error) {
	var pair []json.RawMessage
	if err := json.Unmarshal(res, &pair); err != nil || len(pair) != 2 {
		return nil, nil, fmt.Errorf("object_action result is not [updates, result]: %.200s", res)
	}
	var updates map[string]json.RawMessage
	if err := json.Unmarshal(pair[0], &updates); err != nil {
		return nil, nil, fmt.Errorf("object_action updates: %w", err)
	}
	return updates, pair[1], nil
}

// objectVersions are the object versions nova 26 (Zed) nova-compute announces, from
// the captured calls.
var objectVersions = map[string]string{
	"BlockDeviceMapping": "1.21", "BlockDeviceMappingList": "1.18", "ComputeNode": "1.19", "ComputeNodeList": "1.17",
	"DeviceBus": "1.0", "DeviceMetadata": "1.0", "EC2Ids": "1.0", "Flavor": "1.2", "HVSpec": "1.2", "Instance": "2.7",
	"InstanceActionEvent": "1.4", "InstanceDeviceMetadata": "1.0", "InstanceFault": "1.2", "InstanceInfoCache": "1.5",
	"InstanceList": "2.6", "InstanceNUMACell": "1.6", "InstanceNUMATopology": "1.3", "InstancePCIRequest": "1.4",
	"InstancePCIRequests": "1.1", "KeyPair": "1.4", "KeyPairList": "1.3", "Migration": "1.7", "MigrationContext": "1.2",
	"MigrationList": "1.5", "PciDevice": "1.7", "PciDeviceList": "1.3", "PciDevicePool": "1.1", "PciDevicePoolList": "1.1",
	"Resource": "1.0", "ResourceList": "1.0", "ResourceMetadata": "1.0", "SecurityGroup": "1.2", "SecurityGroupList": "1.1",
	"Service": "1.22", "ServiceList": "1.19", "Tag": "1.1", "TagList": "1.1", "TrustedCerts": "1.0", "VirtCPUFeature": "1.0",
	"VirtCPUModel": "1.0", "VirtCPUTopology": "1.0", "VirtualInterface": "1.3",
}

// ObjectVersions returns the object_versions map sent with a class action on objName:
// the versions of the objects its result may hold.
func ObjectVersions(objName string) map[string]string {
	base := strings.TrimSuffix(objName, "List")
	var keys []string
	switch base {
	case "Service", "ComputeNode":
		keys = []string{"ComputeNode", "HVSpec", "PciDevicePool", "PciDevicePoolList", "Service"}
		if objName == "ComputeNodeList" {
			keys = append(keys, "ComputeNodeList")
		}
	case "InstanceActionEvent", "VirtualInterface":
		keys = []string{base}
	default:
		out := map[string]string{}
		for k, v := range objectVersions {
			out[k] = v
		}
		return out
	}
	out := map[string]string{}
	for _, k := range keys {
		out[k] = objectVersions[k]
	}
	return out
}
