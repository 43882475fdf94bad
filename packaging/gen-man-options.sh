#!/bin/sh
# gen-man-options.sh: turn the flag list of an xcatbm program's --help (on stdin) into
# roff .TP entries for the OPTIONS section of its man page, so the pages list exactly
# the flags the shipped binaries have. Fails when the help lists no flag.
set -eu

awk -v mode=man -f "$(dirname "$0")/help-flags.awk"
