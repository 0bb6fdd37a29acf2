#!/usr/bin/env bash
# Install what Faultline's tests and runs need on Debian 12, as root. Idempotent.
#
# - Debian packages: the lab tools (iproute2, nftables, libfaketime, faketime), etcd 3.4
#   (etcd-server, etcd-client), sshd for the remote-host tests, and Chromium for the report
#   tests. Package scripts are not allowed to start daemons (policy-rc.d), so nothing is left
#   running.
# - Consul 1.8.7: not in bookworm. Debian bullseye's `consul` package is downloaded with a
#   private apt configuration (the system's sources are not touched) and unpacked into
#   .tools/ in this checkout: the binary ends up in .tools/bin/consul.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
tools="$root/.tools"

if [ "$(id -u)" -ne 0 ]; then
    echo "install-targets.sh: run as root (it installs Debian packages): sudo bash scripts/install-targets.sh" >&2
    exit 1
fi

packages=(iproute2 nftables libfaketime faketime etcd-server etcd-client openssh-server openssh-client
          chromium fonts-dejavu-core procps util-linux python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "install-targets.sh: installing ${missing[*]}"
    # Keep package scripts from starting etcd or sshd as system daemons.
    policy=/usr/sbin/policy-rc.d
    own_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
        own_policy=1
    fi
    trap '[ "$own_policy" = 1 ] && rm -f "$policy"; true' EXIT
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq || { echo "install-targets.sh: apt-get update failed: is a Debian mirror reachable?" >&2; exit 1; }
    if ! apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
        echo "install-targets.sh: could not install ${missing[*]} with apt-get; see the error above" >&2
        exit 1
    fi
fi

if [ ! -x "$tools/bin/consul" ]; then
    echo "install-targets.sh: fetching Consul 1.8.7 from Debian bullseye into $tools"
    work=$(mktemp -d)
    trap 'rm -rf "$work"; true' EXIT
    # apt's download sandbox user must be able to write into the private lists.
    chmod 755 "$work"
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "install-targets.sh: no Debian mirror configured in /etc/apt" >&2; exit 1; }
    mkdir -p "$work/lists/partial" "$work/archives/partial"
    echo "deb $mirror bullseye main" > "$work/sources.list"
    apt_private=(-o "Dir::Etc::sourcelist=$work/sources.list" -o "Dir::Etc::sourceparts=-"
                 -o "Dir::State::Lists=$work/lists" -o "Dir::Cache::archives=$work/archives"
                 -o "APT::Get::List-Cleanup=0")
    apt-get "${apt_private[@]}" update -qq
    (cd "$work" && apt-get "${apt_private[@]}" download consul >/dev/null)
    deb=$(ls "$work"/consul_*.deb)
    dpkg -x "$deb" "$work/unpacked"
    mkdir -p "$tools/bin"
    install -m 0755 "$work/unpacked/usr/bin/consul" "$tools/bin/consul"
fi

echo "install-targets.sh: ready: $(etcd --version 2>/dev/null | head -1), $("$tools/bin/consul" version | head -1), $(nft --version)"
