#!/usr/bin/env bash
# Checks the Makefile's set-up recipe (`make deps`) the way a fresh machine
# runs it, without touching this one: fake apt-get, sudo and id commands go
# first on PATH, and OPENBLAS_PROBE=false (GXX_PROBE=false) makes OpenBLAS
# (g++) look missing even where it is installed. Cases: root (no sudo), a
# user with sudo, a user without sudo (must fail with advice), OpenBLAS
# present (nothing installed), g++ missing, both missing. Each install case
# asserts that apt-get got `update` and then `install -y ...` of exactly the
# missing packages with DEBIAN_FRONTEND=noninteractive in its environment.
# Exit 0 when every case passes.
set -uo pipefail
unset DEBIAN_FRONTEND
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fails=0
passes=0

# fakes writes the fake commands into $work/bin. uid is what `id -u` prints;
# with_sudo says whether a sudo command exists.
fakes() {
	local uid=$1 with_sudo=$2
	rm -rf "$work/bin" && mkdir -p "$work/bin" && : >"$work/log"
	cat >"$work/bin/apt-get" <<FAKE
#!/bin/sh
echo "apt-get DEBIAN_FRONTEND=\${DEBIAN_FRONTEND:-unset} as=\${FAKE_SUDO:-self} \$*" >>"$work/log"
FAKE
	cat >"$work/bin/id" <<FAKE
#!/bin/sh
if [ "\$1" = "-u" ]; then echo $uid; else exec /usr/bin/id "\$@"; fi
FAKE
	if [ "$with_sudo" = yes ]; then
		cat >"$work/bin/sudo" <<FAKE
#!/bin/sh
echo "sudo \$*" >>"$work/log"
FAKE_SUDO=root exec "\$@"
FAKE
	fi
	chmod +x "$work/bin/"*
}

# run_deps runs the real recipe with the fakes first on PATH, with OpenBLAS
# probed by $1 and g++ by $2 (default: present). Without sudo, PATH keeps
# only the fakes and the directories of the few tools the recipe needs, so
# a system sudo cannot be found.
run_deps() {
	local probe=$1 gxx=${2:-true} path="$work/bin:$PATH"
	if [ ! -e "$work/bin/sudo" ]; then
		mkdir -p "$work/tools"
		for t in sh make ls echo env cat; do
			p="$(command -v "$t")" && ln -sf "$p" "$work/tools/$t"
		done
		path="$work/bin:$work/tools"
	fi
	local args=()
	[ "$probe" = default ] || args=(OPENBLAS_PROBE="$probe" GXX_PROBE="$gxx")
	PATH="$path" make --no-print-directory -C "$root" deps "${args[@]}" >"$work/out" 2>&1
}

check() { # name, condition command...
	local name=$1
	shift
	if "$@"; then
		passes=$((passes + 1))
	else
		fails=$((fails + 1))
		echo "FAIL: $name"
		echo "  make deps printed:"
		sed 's/^/    /' "$work/out"
		echo "  fake commands saw:"
		sed 's/^/    /' "$work/log"
	fi
}

installed_as() { # who: root-directly | via-sudo; packages (default libopenblas-dev), in order
	local who=$1 as=self pkgs=${2:-libopenblas-dev}
	[ "$who" = via-sudo ] && as=root
	grep -Eqx "apt-get DEBIAN_FRONTEND=noninteractive as=$as( [^ ]+)* update( [^ ]+)*" "$work/log" &&
		grep -Eqx "apt-get DEBIAN_FRONTEND=noninteractive as=$as( [^ ]+)* install -y( -[^ ]+)* $pkgs" "$work/log" &&
		[ "$(grep -n ' update' "$work/log" | head -1 | cut -d: -f1)" -lt "$(grep -n ' install ' "$work/log" | head -1 | cut -d: -f1)" ] &&
		if [ "$who" = via-sudo ]; then grep -q '^sudo ' "$work/log"; else ! grep -q '^sudo ' "$work/log"; fi
}

# 1. root, OpenBLAS missing: apt-get directly, no sudo.
fakes 0 yes
run_deps false
rc=$?
check "root without OpenBLAS: make deps exits 0" test $rc -eq 0
check "root without OpenBLAS: apt-get update + install -y libopenblas-dev, DEBIAN_FRONTEND=noninteractive, no sudo" installed_as root-directly

# 2. a user with sudo, OpenBLAS missing: apt-get through sudo.
fakes 1000 yes
run_deps false
rc=$?
check "user with sudo without OpenBLAS: make deps exits 0" test $rc -eq 0
check "user with sudo without OpenBLAS: apt-get update + install through sudo, DEBIAN_FRONTEND=noninteractive" installed_as via-sudo

# 3. a user without sudo, OpenBLAS missing: fails, saying what to do.
fakes 1000 no
run_deps false
rc=$?
check "user without sudo: make deps fails" test $rc -ne 0
check "user without sudo: the error says to install libopenblas-dev or use purego" grep -q "libopenblas-dev.*purego\|purego.*libopenblas-dev" "$work/out"
check "user without sudo: apt-get not run" test ! -s "$work/log"

# 4. OpenBLAS present: nothing is installed, as root or not.
for uid in 0 1000; do
	fakes $uid yes
	run_deps true
	rc=$?
	check "uid $uid with OpenBLAS: make deps exits 0" test $rc -eq 0
	check "uid $uid with OpenBLAS: apt-get not run" test ! -s "$work/log"
done

# 5. the Makefile's own probe is valid shell: with the fakes, make deps
# exits 0 whether this machine has OpenBLAS or not, and installs only when
# the library is really missing.
fakes 0 yes
run_deps default
rc=$?
check "default probe: make deps exits 0" test $rc -eq 0
have_blas=0 have_gxx=0
{ ls /usr/lib/*/libopenblas.so || ls /usr/lib/libopenblas.so; } >/dev/null 2>&1 && have_blas=1
{ command -v g++ && command -v gcc; } >/dev/null 2>&1 && have_gxx=1
case $have_blas$have_gxx in
11) check "default probes, OpenBLAS and g++ installed here: apt-get not run" test ! -s "$work/log" ;;
01) check "default probes, OpenBLAS missing here: apt-get install run" installed_as root-directly ;;
10) check "default probes, g++ missing here: apt-get install run" installed_as root-directly "g\\+\\+" ;;
*) check "default probes, both missing here: apt-get install run" installed_as root-directly "libopenblas-dev g\+\+" ;;
esac

# 6. g++ missing (the emulated kernel tests need it), OpenBLAS present:
# only g++ is installed.
fakes 0 yes
run_deps true false
rc=$?
check "root without g++: make deps exits 0" test $rc -eq 0
check "root without g++: apt-get install -y g++ alone" installed_as root-directly "g\\+\\+"

# 7. both missing: one install of both; without sudo the advice names both.
fakes 1000 yes
run_deps false false
rc=$?
check "user with sudo without OpenBLAS and g++: make deps exits 0" test $rc -eq 0
check "user with sudo without OpenBLAS and g++: one install of both" installed_as via-sudo "libopenblas-dev g\+\+"
fakes 1000 no
run_deps false false
rc=$?
check "user without sudo, both missing: make deps fails" test $rc -ne 0
check "user without sudo, both missing: the error names both packages" grep -q "libopenblas-dev g++ missing" "$work/out"

echo "set-up checks: $passes passed, $fails failed"
[ $fails -eq 0 ]
