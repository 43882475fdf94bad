// Package rabbitcluster starts private RabbitMQ nodes for tests that stop brokers:
// each node is a rabbitmq-server process of its own (own node name, AMQP and
// distribution ports, data and log directories), and several are joined into one
// cluster with rabbitmqctl join_cluster. The system broker on :5672 is never
// touched: a test may stop, start and kill these nodes as it likes.
//
// The nodes run as the user Debian's rabbitmq-server wrapper switches to (rabbitmq),
// so their directories are created outside the test's temporary directory and
// handed to that user; Start removes them when the test ends.
package rabbitcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Node is one private RabbitMQ node.
type Node struct {
	// Name is the Erlang node name, e.g. xcatbm-t123-2@localhost.
	Name string
	// Port is the node's AMQP port on 127.0.0.1.
	Port int
	dist int
	dir  string
	proc *exec.Cmd
	died chan struct{}
	t    testing.TB
}

// URL is the node's AMQP URL (guest/guest, default vhost).
func (n *Node) URL() string {
	return fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.Port)
}

// Cluster is a set of joined nodes.
type Cluster struct {
	Nodes []*Node
}

// URLs is every node's AMQP URL, in node order.
func (c *Cluster) URLs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.URL()
	}
	return out
}

// TransportURL is oslo's multi-host transport URL naming every node.
func (c *Cluster) TransportURL() string {
	hosts := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		hosts[i] = fmt.Sprintf("guest:guest@127.0.0.1:%d", n.Port)
	}
	return "rabbit://" + strings.Join(hosts, ",") + "/"
}

// Node returns the node with the Erlang name name, or nil.
func (c *Cluster) Node(name string) *Node {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

var seq atomic.Int32

// Start starts n nodes and joins the second and later ones to the first. It fails
// the test when rabbitmq-server is missing or a node does not come up within two
// minutes; the nodes are stopped and their directories removed when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		t.Fatalf("rabbitmq-server is not installed (make services installs it): %v", err)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		node := newNode(t)
		c.Nodes = append(c.Nodes, node)
		if err := node.Start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, node := range c.Nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", c.Nodes[0].Name}, {"start_app"}} {
			if out, err := node.Ctl(args...); err != nil {
				t.Fatalf("rabbitmqctl -n %s %s: %v\n%s", node.Name, strings.Join(args, " "), err, out)
			}
		}
	}
	return c
}

// newNode picks free ports and a directory for a node; it is not started.
func newNode(t testing.TB) *Node {
	t.Helper()
	k := seq.Add(1)
	dir, err := os.MkdirTemp("", fmt.Sprintf("xcatbm-rabbit-%d-%d-", os.Getpid(), k))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ports := freePorts(t, 2)
	n := &Node{Name: fmt.Sprintf("xcatbm-t%d-%d@localhost", os.Getpid(), k), Port: ports[0], dist: ports[1], dir: dir, t: t}
	// loopback_users = none lets guest in over 127.0.0.1 as on the system broker.
	if err := os.WriteFile(filepath.Join(dir, "rabbitmq.conf"), []byte("loopback_users = none\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := handOver(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.kill)
	return n
}

// handOver gives dir to the rabbitmq user when there is one and this is root: the
// Debian wrapper runs the server as that user.
func handOver(dir string) error {
	u, err := user.Lookup("rabbitmq")
	if err != nil || os.Geteuid() != 0 {
		return nil
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

// freePorts returns n ports free on 127.0.0.1 now. They are outside 35672-35682,
// which rabbitmqctl's own distribution listener takes.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var out []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	for len(out) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		p := l.Addr().(*net.TCPAddr).Port
		if p >= 35672 && p <= 35682 {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Start starts the node (again, after Stop) and waits until it serves AMQP.
func (n *Node) Start() error {
	cmd := exec.Command("rabbitmq-server")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.Port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.dir, "pid"),
	)
	logf, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting rabbitmq-server %s: %w", n.Name, err)
	}
	_ = logf.Close()
	died := make(chan struct{})
	go func() { _ = cmd.Wait(); close(died) }()
	n.proc, n.died = cmd, died
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-died:
			return fmt.Errorf("rabbitmq-server %s exited while starting:\n%s", n.Name, n.tail())
		default:
		}
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", n.Port), time.Second); err == nil {
			_ = c.Close()
			if _, err := n.Ctl("await_startup"); err == nil {
				return nil
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	return fmt.Errorf("rabbitmq-server %s not serving AMQP on :%d after 2 minutes:\n%s", n.Name, n.Port, n.tail())
}

// Stop stops the node's Erlang VM the orderly way (rabbitmqctl stop) and waits for
// the process to end.
func (n *Node) Stop() error {
	if n.proc == nil {
		return nil
	}
	out, err := n.Ctl("stop")
	select {
	case <-n.died:
	case <-time.After(time.Minute):
		n.kill()
		return fmt.Errorf("rabbitmq-server %s did not stop within a minute (%v: %s); killed", n.Name, err, out)
	}
	n.proc = nil
	return nil
}

// kill ends the node's process group at once, if it runs.
func (n *Node) kill() {
	if n.proc == nil {
		return
	}
	_ = syscall.Kill(-n.proc.Process.Pid, syscall.SIGKILL)
	if pid, err := os.ReadFile(filepath.Join(n.dir, "pid")); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(pid))); err == nil {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
	select {
	case <-n.died:
	case <-time.After(10 * time.Second):
	}
	n.proc = nil
}

// Ctl runs rabbitmqctl against the node and returns its output.
func (n *Node) Ctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", n.Name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmqctl %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// QueueLeader returns the Erlang node name of the leader of the quorum queue named
// queue in vhost "/".
func (n *Node) QueueLeader(queue string) (string, error) {
	out, err := n.Ctl("list_queues", "--quiet", "--no-table-headers", "name", "leader")
	if err != nil {
		return "", fmt.Errorf("%w: %s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == queue {
			return f[1], nil
		}
	}
	return "", errors.New("queue " + queue + " not found on " + n.Name)
}

func (n *Node) tail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "server.out"))
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
