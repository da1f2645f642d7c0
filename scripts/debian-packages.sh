#!/usr/bin/env bash
# ensure_debian_package BINARY PACKAGE: installs a Debian package the tests need when BINARY is missing.
# Sourced by scripts/test.sh. CI runs as root on a fresh Debian machine: apt-get update, then install
# without recommends. Package scripts must not start services (there is no init system to manage them,
# and the tests start their own servers on free loopback ports), so a policy-rc.d that refuses every
# service start is in place during the install unless the machine already has one.
# Not root and missing: fail with the command to run, never skip the tests that need it.

ensure_debian_package() {
  local binary="$1" package="$2"
  command -v "$binary" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" != "0" ]; then
    echo "$binary is missing: run  sudo apt-get update && sudo apt-get install -y --no-install-recommends $package" >&2
    return 1
  fi
  echo "installing Debian package $package (for $binary)" >&2
  local policy=/usr/sbin/policy-rc.d own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && own_policy=1
  fi
  local status=0
  { { [ -n "${APT_LISTS_UPDATED:-}" ] || apt-get update -qq; } && APT_LISTS_UPDATED=1 &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends \
      "$package" >/dev/null; } || status=$?
  [ "$own_policy" = 1 ] && rm -f "$policy"
  if [ "$status" != 0 ] || ! command -v "$binary" >/dev/null 2>&1; then
    echo "could not install $package; run  apt-get update && apt-get install -y --no-install-recommends $package" >&2
    return 1
  fi
}
