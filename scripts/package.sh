#!/usr/bin/env bash
# package.sh: build the xcatbm .deb and .rpm (and the separate xcatbm-sim packages when
# cmd/xcatbm-sim exists) into dist/ with nfpm, from packaging/.
#
# Environment: VERSION (default: from `git describe --tags --always --dirty`, made a
# version dpkg and rpm both accept), RELEASE (default 1), GOARCH (default: the host's),
# MAINTAINER, NFPM (the nfpm command), DIST (output directory, default dist).
#
# The example configuration, the man pages' OPTIONS sections and the command list of
# xcatbm(8) are generated from the --help of the binaries being packaged, so they
# cannot drift from the flags.
set -euo pipefail
cd "$(dirname "$0")/.."

NFPM=${NFPM:-go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
DIST=${DIST:-dist}
BUILD=.cache/package
export RELEASE=${RELEASE:-1}
export MAINTAINER=${MAINTAINER:-xcatbm maintainers <root@localhost>}
export ARCH=${GOARCH:-$(go env GOARCH)}

# package_version turns `git describe` output into a version string dpkg and rpm both
# order correctly: v1.2.0 -> 1.2.0, v1.2.0-3-gabc1234 -> 1.2.0+git3.gabc1234,
# v1.2.0-rc1 -> 1.2.0~rc1, no tag -> 0.0.0+git<commits>.g<hash>; -dirty -> .dirty.
package_version() {
	local d dirty="" base n hash
	if ! d=$(git describe --tags --dirty 2>/dev/null); then
		d=$(git describe --always --dirty)
		if [[ $d == *-dirty ]]; then
			dirty=.dirty
			d=${d%-dirty}
		fi
		echo "0.0.0+git$(git rev-list --count HEAD).g$d$dirty"
		return
	fi
	if [[ $d == *-dirty ]]; then
		dirty=.dirty
		d=${d%-dirty}
	fi
	d=${d#v}
	if [[ $d =~ ^(.*)-([0-9]+)-g([0-9a-f]+)$ ]]; then
		base=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]} hash=${BASH_REMATCH[3]}
		echo "${base//-/\~}+git$n.g$hash$dirty"
	else
		echo "${d//-/\~}${dirty:++git0$dirty}"
	fi
}
export VERSION=${VERSION:-$(package_version)}
if ! [[ $VERSION =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
	echo "package: version $VERSION is not a valid deb and rpm version" >&2
	exit 1
fi
echo "package: xcatbm $VERSION-$RELEASE ($ARCH)"

rm -rf "$BUILD"
mkdir -p "$BUILD"/{bin,man,scripts/deb,scripts/rpm} "$DIST"

# Static binaries, so one package serves every glibc the site runs.
CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go build -trimpath -o "$BUILD/bin/" ./cmd/xcatbm ./cmd/xcatbm-worker
have_sim=
if [[ -d cmd/xcatbm-sim ]]; then
	CGO_ENABLED=0 GOOS=linux GOARCH=$ARCH go build -trimpath -o "$BUILD/bin/" ./cmd/xcatbm-sim
	have_sim=1
fi

# The help texts come from binaries built for this host (the packaged ones may be for
# another architecture).
hostbin=$BUILD/hostbin
mkdir -p "$hostbin"
if [[ $ARCH == "$(go env GOHOSTARCH)" ]]; then
	cp "$BUILD/bin/xcatbm" "$BUILD/bin/xcatbm-worker" "$hostbin/"
else
	GOARCH=$(go env GOHOSTARCH) go build -o "$hostbin/" ./cmd/xcatbm ./cmd/xcatbm-worker
fi
help_of() { "$@" --help 2>&1; }

help_of "$hostbin/xcatbm-worker" | sh packaging/gen-example-env.sh >"$BUILD/example.env"

# command_section prints the roff of one `xcatbm NAME` command for xcatbm(8).
command_section() {
	local name=$1 summary=$2 help
	printf '.SS "xcatbm %s"\n' "${name//-/\\-}"
	printf '%s\n' "$summary" | sed 's/-/\\-/g; s/^[.'\'']/\\\&&/'
	help=$(help_of "$hostbin/xcatbm" "$name") || true
	if grep -q '^usage: ' <<<"$help"; then
		printf '.PP\n'
		sed -n 's/^usage: //p' <<<"$help" | head -1 | sed 's/\\/\\e/g; s/-/\\-/g; s/^xcatbm \([^ ]*\)/\\fBxcatbm \1\\fR/'
	fi
	if grep -q '^  --' <<<"$help"; then
		printf '.RS\n'
		printf '%s\n' "$help" | sh packaging/gen-man-options.sh
		printf '.RE\n'
	fi
}

# registered reports whether `xcatbm` has the command NAME (its --help succeeds and
# lists flags).
registered() { help_of "$hostbin/xcatbm" "$1" | grep -q '^Flags\|^OPTIONS'; }

# synopsis_of prints the roff SYNOPSIS of an xcatbm command from its usage line.
# It reads either a "usage: xcatbm NAME ..." line or, for the commands whose -h is a
# manual page of its own, the SYNOPSIS line that is not the -h one.
synopsis_of() {
	help_of "$hostbin/xcatbm" "$1" |
		sed -n -e 's/^usage: xcatbm '"$1"'/'"$1"'/p' \
			-e '/^SYNOPSIS/,/^[A-Z]/{/^  '"$1"' [^[]/s/^  //p}' | head -1 |
		sed 's/\\/\\e/g; s/-/\\-/g; s/^\([^ ]*\)/\\fB\1\\fR/'
}

# fill TEMPLATE MARKER CONTENT-FILE: the template with the marker line replaced.
fill() {
	awk -v marker="$2" -v file="$3" '
		$0 == ".\\\" " marker { while ((getline l < file) > 0) print l; next }
		{ print }' "$1"
}

date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}" +%Y-%m-%d)
man_page() { # man_page SOURCE OUT [MARKER FILE]...
	local src=$1 out=$2 tmp
	tmp=$(mktemp)
	sed "s/@VERSION@/$VERSION/; s/@DATE@/$date/" "$src" >"$tmp"
	shift 2
	while (($# > 0)); do
		fill "$tmp" "$1" "$2" >"$tmp.next" && mv "$tmp.next" "$tmp"
		shift 2
	done
	gzip -9n <"$tmp" >"$BUILD/man/$out.gz"
	rm -f "$tmp"
}

gen=$BUILD/gen
mkdir -p "$gen"
help_of "$hostbin/xcatbm-worker" | sh packaging/gen-man-options.sh >"$gen/worker-options"
man_page packaging/man/xcatbm-worker.8 xcatbm-worker.8 "@OPTIONS@" "$gen/worker-options"

: >"$gen/commands"
while read -r name summary; do
	command_section "$name" "$summary" >>"$gen/commands"
done < <(help_of "$hostbin/xcatbm" | sed -n '/^Commands:/,/^$/{/^  /p}')
if ! [[ -s $gen/commands ]]; then
	echo "package: xcatbm --help lists no commands" >&2
	exit 1
fi
man_page packaging/man/xcatbm.8 xcatbm.8 "@COMMANDS@" "$gen/commands"

for cmd in opsaddbmnode opsaddimage; do
	if registered "$cmd"; then
		synopsis_of "$cmd" >"$gen/$cmd-synopsis"
		help_of "$hostbin/xcatbm" "$cmd" | sh packaging/gen-man-options.sh >"$gen/$cmd-options"
	else
		echo "package: WARNING: xcatbm has no $cmd command yet; $cmd(1) lists no flags" >&2
		printf '\\fB%s\\fR [\\fIflags\\fR] [\\fIarguments\\fR]\n' "$cmd" >"$gen/$cmd-synopsis"
		printf 'Run \\fB%s \\-\\-help\\fR for the flags.\n' "$cmd" >"$gen/$cmd-options"
	fi
	man_page "packaging/man/$cmd.1" "$cmd.1" "@SYNOPSIS@" "$gen/$cmd-synopsis" "@OPTIONS@" "$gen/$cmd-options"
done

for kind in deb rpm; do
	for s in packaging/scripts/"$kind"/*; do
		{
			printf '#!/bin/sh\nset -e\n\n'
			cat packaging/scripts/lib.sh
			printf '\n'
			cat "$s"
		} >"$BUILD/scripts/$kind/$(basename "$s")"
	done
done

for packager in deb rpm; do
	$NFPM pkg --config packaging/nfpm.yaml --packager "$packager" --target "$DIST/"
	if [[ -n $have_sim ]]; then
		$NFPM pkg --config packaging/nfpm-sim.yaml --packager "$packager" --target "$DIST/"
	fi
done
ls -l "$DIST"
