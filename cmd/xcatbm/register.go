package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"xcatbm/internal/broker"
	"xcatbm/internal/config"
	"xcatbm/messages"
	"xcatbm/publisher"
	"xcatbm/xcat"
)

func init() {
	register(subcommand{name: "opsaddbmnode", summary: "register xCAT nodes as bare metal nodes of a compute host (a job on the bus)", run: runAddBMNode})
	register(subcommand{name: "opsaddimage", summary: "register xCAT osimages as Glance images (a job on the bus)", run: runAddImage})
	register(subcommand{name: "rmbmnode", summary: "remove registered bare metal nodes of a compute host (a job on the bus)", run: runRmBMNode})
}

// jobFlags are the flags every registration command has.
type jobFlags struct {
	transportURL config.Secret
	exchange     string
	noWait       bool
	output       string
	timeout      time.Duration
	maxNodes     int // the node commands' --max-nodes
}

func (f *jobFlags) bind(fs *flag.FlagSet) {
	fs.Var(&f.transportURL, "transport-url", "oslo transport `url` of nova's bus, rabbit://user:pass@host:5672/vhost\n(default rabbit://guest:guest@127.0.0.1:5672/)")
	fs.StringVar(&f.exchange, "exchange", "nova", "oslo control exchange")
	fs.BoolVar(&f.noWait, "no-wait", false, "publish the job and exit without following it")
	fs.StringVar(&f.output, "output", "text", "summary format: text or json")
	fs.DurationVar(&f.timeout, "timeout", 30*time.Minute, "give up following the job after this long")
}

// manPage is a command's -h text in the layout of xCAT's man pages.
type manPage struct {
	name, synopsis, description, returnValue, examples string
}

func (m manPage) usage(fs *flag.FlagSet) func() {
	return func() {
		w := fs.Output()
		section := func(title, body string) {
			fmt.Fprintf(w, "%s\n\n", title)
			for _, l := range strings.Split(strings.Trim(body, "\n"), "\n") {
				if l == "" {
					fmt.Fprintln(w)
					continue
				}
				fmt.Fprintf(w, "  %s\n", l)
			}
			fmt.Fprintln(w)
		}
		section("NAME", m.name)
		section("SYNOPSIS", m.synopsis)
		section("DESCRIPTION", m.description)
		fmt.Fprintf(w, "OPTIONS\n\n")
		config.PrintFlags(w, fs)
		fmt.Fprintln(w)
		section("RETURN VALUE", m.returnValue)
		section("EXAMPLES", m.examples)
	}
}

const returnValue = `0  every node or image succeeded (or was skipped) — or, with --no-wait, the job was published
1  a node or image failed, the job failed, or it could not be published or followed
2  bad usage: a missing or malformed argument`

// parseArgs parses flags given before, between or after the positional arguments
// (as xCAT's commands take them) and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string, env *environment) ([]string, int, bool) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if f := fs.Lookup(name); f != nil {
			if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
				continue
			}
			if i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		}
	}
	if code, done := config.ParseCommandLine(fs, flags, env.getenv, env.stdout, env.stderr); done {
		return nil, code, false
	}
	return pos, 0, true
}

// usageErr prints a usage error (see config.UsageError) and returns exit code 2.
func usageErr(env *environment, cmd, format string, args ...any) int {
	return config.UsageError(env.stderr, cmd, format, args...)
}

// runJob publishes a job and, unless --no-wait, follows it and prints the summary.
func runJob(ctx context.Context, env *environment, cmd string, f *jobFlags, host, method, item string, args messages.JobArgs) int {
	if f.output != "text" && f.output != "json" {
		return usageErr(env, cmd, "--output %q: want text or json", f.output)
	}
	transport := f.transportURL.Reveal()
	if transport == "" {
		transport = "rabbit://guest:guest@127.0.0.1:5672/"
	}
	urls, err := broker.ParseTransportURL(transport)
	if err != nil {
		return usageErr(env, cmd, "--transport-url %s: %v", config.RedactURL(transport), err)
	}
	maxNodes := f.maxNodes
	if maxNodes <= 0 {
		maxNodes = -1 // --max-nodes 0: no bound
	}
	p, err := publisher.Dial(publisher.Config{URLs: urls, Exchange: f.exchange, MaxNodes: maxNodes})
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
		return 1
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	job, err := p.Submit(ctx, host, method, args, !f.noWait)
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
		return 1
	}
	defer job.Close()
	if f.noWait {
		if f.output == "json" {
			fmt.Fprintf(env.stdout, "{\"job_id\": %q, \"kind\": %q, \"compute_host\": %q}\n", job.ID, method, host)
		} else {
			fmt.Fprintf(env.stdout, "%s job %s published to compute host %s\n", method, job.ID, host)
		}
		return 0
	}
	var prog *publisher.Progress
	if f.output == "text" {
		prog = publisher.NewProgress(env.stderr, item+"s")
		fmt.Fprintf(env.stderr, "%s job %s published to compute host %s; waiting for it\n", method, job.ID, host)
	}
	end, err := job.Follow(ctx, func(pl *messages.JobPayload) {
		if prog != nil {
			prog.Update(pl)
		}
	})
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
		return 1
	}
	s := publisher.Summarize(job, end)
	if f.output == "json" {
		err = s.WriteJSON(env.stdout)
	} else {
		prog.Done(end)
		err = s.WriteText(env.stdout, item)
	}
	if err != nil {
		fmt.Fprintf(env.stderr, "%s: %v\n", cmd, err)
		return 1
	}
	return s.ExitCode()
}

// checkNoderange refuses, before anything is sent, a noderange that cannot be parsed,
// that xcatbm's xCAT client would refuse (xcat.ValidateNoderange), or that names more
// than maxNodes nodes (0: no bound).
func checkNoderange(nr string, maxNodes int) error {
	if strings.TrimSpace(nr) == "" {
		return errors.New("empty noderange")
	}
	if err := xcat.ValidateNoderange(nr); err != nil {
		return err
	}
	if err := xcat.CheckNoderangeSize(nr, maxNodes); err != nil {
		return fmt.Errorf("%w (--max-nodes)", err)
	}
	if _, err := xcat.ExpandNoderange(context.Background(), nr, nil); err != nil {
		// Groups, regexes and attribute selectors need xCAT; only syntax is checked here.
		if !strings.ContainsAny(nr, "/=~") {
			return err
		}
	}
	return nil
}

var addBMNodePage = manPage{
	name:     "opsaddbmnode - register xCAT nodes as OpenStack bare metal nodes",
	synopsis: "opsaddbmnode [-h | --help]\nopsaddbmnode <noderange> -s <compute_host> [--resource-class <class>] [--no-wait] [--output text|json]",
	description: `opsaddbmnode publishes a register_nodes job to the xcatbm worker serving
<compute_host> and follows it to its end. The worker expands <noderange> through
xCAT (lsdef), reads each node's nodehm (power, else mgt), ipmi (bmc, username,
password, with the passwd table's ipmi entry as default), mac and hwinv (cpucount,
memory, the first disk's size) and records the node for the compute host; nova's
compute node and placement resource provider follow from that record.

The resource class is <class> when given, else BAREMETAL_<cpus>C<memory GiB>G
(for example BAREMETAL_32C128G). Running the command again changes nothing and
reports each node "unchanged"; a node whose xCAT definition changed is updated. A
node without a MAC is skipped; a node lacking an ipmi or hwinv value fails with
the table.attribute missing. BMC passwords are never printed.

With a worker that stands in for nova-compute (xcatbm-worker --nova), a node is
reported ok only once its compute node and its resource provider with inventory
exist, so nova can schedule to it. Otherwise it is pending (nova-conductor or
placement did not answer; the worker keeps trying) or failed (they refused), and
the message says what exists and what is missing. xcatbm nodes lists where each
node stands at any time.`,
	returnValue: returnValue + `
3  nothing failed, but some nodes are pending: recorded, not yet in nova and
   placement (the worker keeps trying; see xcatbm nodes)`,
	examples: `1. Register node01 to node20 for compute host xcat-mn1:
     opsaddbmnode node[01-20] -s xcat-mn1

   then see where each stands in nova and placement:
     xcatbm nodes node[01-20]

2. Register a group with an explicit resource class, output for scripts:
     opsaddbmnode gpu -s xcat-mn1 --resource-class gpu.large --output json`,
}

func runAddBMNode(ctx context.Context, env *environment, args []string) int {
	const cmd = "opsaddbmnode"
	var rc *string
	j, code, ok := parseNodeJob(env, cmd, addBMNodePage, args, "the compute `host` whose worker registers the nodes (required)", func(fs *flag.FlagSet) {
		rc = fs.String("resource-class", "", "placement resource `class` of the nodes (default: derived from the hardware)")
	})
	if !ok {
		return code
	}
	a := &messages.RegisterNodesArgs{NodeRange: j.noderange, ComputeHost: j.host, ResourceClass: *rc}
	// The noderange and the host are checked; what the message refuses now is the
	// resource class.
	var fe *messages.FieldError
	if err := a.Validate(); errors.As(err, &fe) {
		return usageErr(env, cmd, "--resource-class %s", fe.Problem)
	} else if err != nil {
		return usageErr(env, cmd, "%v", err)
	}
	return runJob(ctx, env, cmd, &j.flags, j.host, messages.MethodRegisterNodes, "node", a)
}

// nodeJob is what the commands that take a noderange and -s <compute_host> parse.
type nodeJob struct {
	flags     jobFlags
	host      string
	noderange string
}

// parseNodeJob parses the arguments of a command taking one noderange and a
// required -s <compute_host> (with hostHelp), plus what extra adds to its flags.
func parseNodeJob(env *environment, cmd string, page manPage, args []string, hostHelp string, extra func(*flag.FlagSet)) (j nodeJob, code int, ok bool) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	j.flags.bind(fs)
	host := fs.String("s", "", hostHelp)
	fs.IntVar(&j.flags.maxNodes, "max-nodes", xcat.DefaultMaxNodes, "refuse a noderange naming more than this many `nodes` (0: no limit)")
	if extra != nil {
		extra(fs)
	}
	fs.Usage = page.usage(fs)
	pos, code, ok := parseArgs(fs, args, env)
	if !ok {
		return j, code, false
	}
	switch {
	case len(pos) != 1:
		return j, usageErr(env, cmd, "want exactly one noderange, got %d arguments", len(pos)), false
	case *host == "":
		return j, usageErr(env, cmd, "-s <compute_host> is required"), false
	}
	if err := checkNoderange(pos[0], j.flags.maxNodes); err != nil {
		return j, usageErr(env, cmd, "%v", err), false
	}
	j.host, j.noderange = *host, pos[0]
	return j, 0, true
}

var rmBMNodePage = manPage{
	name:     "rmbmnode - remove registered bare metal nodes",
	synopsis: "rmbmnode [-h | --help]\nrmbmnode <noderange> -s <compute_host> [--no-wait] [--output text|json]",
	description: `rmbmnode publishes a remove_nodes job to the xcatbm worker serving
<compute_host>, which deletes the nodes' registration (and so their compute node
and resource provider). A node running an instance is refused; a node that is not
registered is reported skipped. The noderange is expanded through xCAT, or as
written when xCAT no longer knows the nodes.`,
	returnValue: returnValue,
	examples: `1. Remove node01 to node04 from compute host xcat-mn1:
     rmbmnode node[01-04] -s xcat-mn1`,
}

func runRmBMNode(ctx context.Context, env *environment, args []string) int {
	const cmd = "rmbmnode"
	j, code, ok := parseNodeJob(env, cmd, rmBMNodePage, args, "the compute `host` whose nodes to remove (required)", nil)
	if !ok {
		return code
	}
	return runJob(ctx, env, cmd, &j.flags, j.host, messages.MethodRemoveNodes, "node", &messages.RemoveNodesArgs{NodeRange: j.noderange})
}

var addImagePage = manPage{
	name:     "opsaddimage - register xCAT osimages as OpenStack images",
	synopsis: "opsaddimage [-h | --help]\nopsaddimage <image1,image2,...> [-n <name1,name2,...>] -c <cloud> [-s <compute_host>] [--no-wait] [--output text|json]",
	description: `opsaddimage publishes a register_images job to an xcatbm worker: the one serving
<compute_host> when -s is given, else any worker (the shared queue "compute"). The worker checks that every image is an xCAT osimage (lsdef -t
osimage; all missing ones are reported together and nothing is created), then
creates in the image service of <cloud> (an entry of the worker's clouds.yaml) one
image per osimage, named by -n in the same order or else like the osimage:
disk_format qcow2, container_format bare, public, with the property
xcat_image_name=<osimage> that tells xcatbm which osimage to install. An image of
that name already there is reused (updated when its visibility or property differ),
so running the command again changes nothing.

Every worker reads clouds.yaml (its --clouds-yaml) for <cloud>; use -s to pick a
worker whose clouds.yaml has it.`,
	returnValue: returnValue,
	examples: `1. Register an osimage under its own name in cloud "prod":
     opsaddimage rhels7.5-x86_64-install-compute -c prod

2. Register two osimages under other names:
     opsaddimage rhels7.5-x86_64-install-compute,sles12-x86_64-install-compute \
         -n rhel75,sles12 -c prod -s xcat-mn1`,
}

func runAddImage(ctx context.Context, env *environment, args []string) int {
	const cmd = "opsaddimage"
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var f jobFlags
	f.bind(fs)
	names := fs.String("n", "", "comma-separated image `names`, one per osimage (default: the osimage names)")
	cloud := fs.String("c", "", "the `cloud` (clouds.yaml entry of the worker) to register the images in (required)")
	host := fs.String("s", "", "the compute `host` whose worker does the job (default: any worker)")
	fs.Usage = addImagePage.usage(fs)
	pos, code, ok := parseArgs(fs, args, env)
	if !ok {
		return code
	}
	switch {
	case len(pos) != 1:
		return usageErr(env, cmd, "want one comma-separated list of osimages, got %d arguments", len(pos))
	case *cloud == "":
		return usageErr(env, cmd, "-c <cloud> is required")
	}
	images := splitList(pos[0])
	var newNames []string
	if *names != "" {
		newNames = splitList(*names)
		if len(newNames) != len(images) {
			return usageErr(env, cmd, "-n gives %d names for %d images", len(newNames), len(images))
		}
	}
	a := &messages.RegisterImagesArgs{Cloud: *cloud}
	for i, im := range images {
		if im == "" {
			return usageErr(env, cmd, "empty image name in %q", pos[0])
		}
		if err := xcat.ValidateOSImageName(im); err != nil {
			return usageErr(env, cmd, "%v", err)
		}
		n := im
		if newNames != nil {
			n = newNames[i]
			if n == "" {
				return usageErr(env, cmd, "empty name in -n %q", *names)
			}
		}
		a.Images = append(a.Images, messages.ImageRegistration{XCATName: im, Name: n})
	}
	return runJob(ctx, env, cmd, &f, *host, messages.MethodRegisterImages, "image", a)
}

func splitList(s string) []string {
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}
