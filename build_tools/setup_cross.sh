#!/bin/sh
# Debian's aarch64 cross toolchain and user-mode QEMU, for `build-kernels --targets aarch64`
# and tests/test_aarch64.py. Run by `make setup`; idempotent and silent when all is there.
# Installs only as root with apt-get (the developers' machines and CI); anywhere else it
# says what is missing and exits 0: the build then refuses aarch64 with the same hint and
# the test skips with its reason.
set -eu
PKGS="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"

have() {
    command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 &&
    command -v qemu-aarch64 >/dev/null 2>&1 &&
    [ -e /usr/aarch64-linux-gnu/lib/libc.so.6 ] &&
    [ -e /usr/aarch64-linux-gnu/include/stdio.h ]
}

have && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_cross: not root with apt-get; aarch64 builds and tests need: $PKGS" >&2
    exit 0
fi
start=$(date +%s)
log="${TMPDIR:-/tmp}/aotk-setup-cross.log"
export DEBIAN_FRONTEND=noninteractive
# wait for another apt/dpkg run on the machine rather than fail on its lock
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@" >>"$log" 2>&1; }
if apt_get update -qq && apt_get install -y -qq --no-install-recommends $PKGS && have; then
    echo "setup_cross: installed $PKGS in $(( $(date +%s) - start )) s" >&2
else
    tail -n 5 "$log" >&2 || true
    echo "setup_cross: apt-get could not install $PKGS (log: $log);" \
         "aarch64 builds are refused and tests/test_aarch64.py skips" >&2
fi
