#!/usr/bin/env bash
# Installs the Debian packages the object-file tests need to cross-compile
# and run the aarch64 case (tests/tests/object_file.rs):
#   gcc-aarch64-linux-gnu   aarch64-linux-gnu-gcc (cross C compiler + binutils)
#   libc6-dev-arm64-cross   aarch64 libc headers and static libc (for -static)
#   qemu-user               qemu-aarch64 (user-mode emulator)
# The host `cc` (build-essential) is assumed present, as for the C API test.
#
# Idempotent and quiet: prints nothing and touches nothing when every package
# is already installed; otherwise runs `apt-get update` and installs the
# missing ones without recommends (needs root, or sudo). Debian 12 (bookworm).
set -euo pipefail

PACKAGES=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)

missing=()
for p in "${PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null)" != "ii " ]; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "ci_apt.sh: installing ${missing[*]}" >&2
start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "ci_apt.sh: done in $(( $(date +%s) - start )) s" >&2
