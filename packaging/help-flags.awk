# help-flags.awk: reads the flag list of an xcatbm program's --help (internal/config's
# usage format) and prints each flag for the packaging, as chosen by -v mode=:
#   mode=env  a commented assignment of its XCATBM_* variable, for example.env
#   mode=man  a roff .TP entry, for the OPTIONS section of a man page
# Used by gen-example-env.sh and gen-man-options.sh; fails when the help lists no flag.
#
# The format: "  --flag arg" (or "  -f arg"), then the usage lines indented by six
# spaces, one of which may be "      env XCATBM_X[ (or XCATBM_X_FILE)][, default D]".

function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	return s
}
function emit_env() {
	print ""
	print "# --" flag (arg != "" ? " " arg : "")
	for (i = 1; i <= nusage; i++) print "#   " usage[i]
	if (flag == "compute-host") {
		print "#   Set by xcatbm-worker@HOST.service from the instance name (the command line"
		print "#   wins over the environment); do not set it here."
		print "#" env "="
	} else if (secret) {
		print "#   A secret: keep it in a file readable by root and the xcatbm group only."
		print "#" env "_FILE=/etc/xcatbm/secrets/" flag
	} else if (flag == "xcat-cred-dir") {
		print "#   The worker has no home directory: keep ca.pem and client-cred.pem here."
		print "#" env "=/etc/xcatbm/secrets/xcat"
	} else if (arg == "") {
		print "#" env "=false"
	} else {
		print "#" env "=" def
	}
}
function emit_man() {
	print ".TP"
	print "\\fB" esc(dashes) esc(flag) "\\fR" (arg != "" ? " \\fI" esc(arg) "\\fR" : "")
	for (i = 1; i <= nusage; i++) {
		line = esc(usage[i])
		if (line ~ /^[.\047]/) line = "\\&" line
		print line
	}
	if (env != "") {
		print ".br"
		print "Environment: \\fB" esc(env) "\\fR" (secret ? " (or \\fB" esc(env) "_FILE\\fR, a file holding the value)" : "") (def != "" ? "; default " esc(def) : "") "."
	}
}
function flush() {
	if (flag == "") return
	if (mode == "env") emit_env(); else emit_man()
	flag = ""; arg = ""; env = ""; def = ""; secret = 0; nusage = 0
	nflags++
}
/^  -/ {
	flush()
	line = $0
	sub(/^  -+/, "", line)
	dashes = ($0 ~ /^  --/) ? "--" : "-"
	n = index(line, " ")
	if (n > 0) { flag = substr(line, 1, n - 1); arg = substr(line, n + 1) }
	else { flag = line; arg = "" }
	next
}
flag != "" && /^      env XCATBM_/ {
	rest = substr($0, 11)
	n = index(rest, ", default ")
	if (n > 0) { def = substr(rest, n + 10); rest = substr(rest, 1, n - 1) }
	secret = (index(rest, " (or ") > 0)
	split(rest, parts, " ")
	env = parts[1]
	next
}
flag != "" && /^      / { usage[++nusage] = substr($0, 7); next }
flag != "" { flush() }
END {
	flush()
	if (nflags == 0) { print "help-flags.awk: no flags found in the help text" > "/dev/stderr"; exit 1 }
}
