#!/bin/sh
# gen-example-env.sh: turn `xcatbm-worker --help` (on stdin) into the commented example
# configuration installed as /etc/xcatbm/example.env, so the example lists exactly the
# flags the shipped worker has.
#
# Every flag becomes a commented assignment of its XCATBM_* variable with its default
# (a flag printed without an argument name is a boolean, default false); a secret flag
# (its help names an _FILE variable) is shown in its _FILE form, pointing into
# /etc/xcatbm/secrets. It fails when the help lists no flag at all.
set -eu

cat <<'HEADER'
# xcatbm worker settings: copy this file to /etc/xcatbm/HOST.env for nova compute host
# HOST, uncomment what you need, then `systemctl enable --now xcatbm-worker@HOST`.
#
# Each line sets one flag of xcatbm-worker (see xcatbm-worker(8)); the value shown is
# the default. systemd reads this file (EnvironmentFile=): one VAR=value per line, no
# shell expansion. Secrets never go here: put each in its own file under
# /etc/xcatbm/secrets (mode 0640, owner root, group xcatbm) and name the file with the
# variable's _FILE form, e.g.
#   install -m 0640 -g xcatbm /dev/stdin /etc/xcatbm/secrets/transport-url
HEADER

awk -v mode=env -f "$(dirname "$0")/help-flags.awk"
