package config

import "flag"

// XCAT is how a program reaches xCAT: the same four settings, flag names,
// environment variables and help in every xcatbm program.
type XCAT struct {
	// Backend is native (xcatd's XML protocol over TLS) or cli (xCAT-client commands).
	Backend string
	// Host is xcatd's host:port; empty means $XCATHOST, else localhost:3001.
	Host string
	// CredDir holds ca.pem and client-cred.pem; empty means ~/.xcat.
	CredDir string
	// CLIDir holds the xCAT-client commands of the cli backend.
	CLIDir string
}

// BindXCAT defines --xcat-backend, --xcat-host, --xcat-cred-dir and --xcat-cli-dir on
// fs into x. A program that named them otherwise in earlier releases keeps those
// names with Alias.
func BindXCAT(fs *flag.FlagSet, x *XCAT) {
	fs.StringVar(&x.Backend, "xcat-backend", "native", "how to reach xCAT: native (xcatd's XML protocol over TLS) or cli (xCAT-client commands)")
	fs.StringVar(&x.Host, "xcat-host", "", "xcatd `host:port` for the native backend (default $XCATHOST, else localhost:3001)")
	fs.StringVar(&x.CredDir, "xcat-cred-dir", "", "`dir` with ca.pem and client-cred.pem for xcatd (default ~/.xcat)")
	fs.StringVar(&x.CLIDir, "xcat-cli-dir", "/opt/xcat/bin", "`dir` of the xCAT-client commands for the cli backend")
}
