#!/usr/bin/env bash
# The test command: installs what it needs, checks lint and generated files, runs every test tier.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
source scripts/debian-packages.sh
ensure_debian_package promtool prometheus  # promtool and prometheus: tests/unit/test_monitoring.py, tests/operator/test_prometheus.py

# Debian packages the tests need (CI runs as root on a fresh machine): OpenSSH's sshd for the sftp tests.
if [ ! -x /usr/sbin/sshd ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "== apt-get install openssh-server (the sftp tests run a private sshd)" >&2
    apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openssh-server openssl >&2
  else
    echo "test.sh: /usr/sbin/sshd is missing; as root run: apt-get update && apt-get install -y openssh-server" >&2
    exit 1
  fi
fi

echo "== ruff" >&2
ruff check operator tests bench
echo "== hadolint (Dockerfile)" >&2
hadolint Dockerfile
# The runtime-contract test (tests/e2e/test_runtime_contract.py) runs the operator and a sync as
# uid 65532 on a read-only root with bubblewrap.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "== installing bubblewrap" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "bubblewrap is missing: sudo apt-get update && sudo apt-get install -y bubblewrap" >&2
    exit 1
  fi
fi
echo "== generated files (crds/, docs/api.md)" >&2
walkme-dic crds --check
echo "== pytest" >&2
set +e
python -m pytest -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
