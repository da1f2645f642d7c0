#!/usr/bin/env bash
# The test command: installs what it needs, checks lint and generated files, runs every test tier.
# Extra arguments go to pytest, e.g. scripts/test.sh tests/unit -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
source scripts/bootstrap.sh
source scripts/debian-packages.sh
# Debian packages the tests need (CI runs as root on a fresh machine):
ensure_debian_package promtool prometheus      # promtool and prometheus: tests/unit/test_monitoring.py, tests/operator/test_prometheus.py
ensure_debian_package /usr/sbin/sshd openssh-server  # a private sshd for the sftp tests (ssh-keygen comes with it)
ensure_debian_package openssl openssl          # password hashes for the sftp password-login tests
ensure_debian_package bwrap bubblewrap         # the node agent runs every Pod's containers in a bubblewrap sandbox
ensure_debian_package setpriv util-linux       # ... as the Pod's uid (runAsUser), with no capabilities

echo "== ruff" >&2
ruff check operator dev tests bench
echo "== hadolint (Dockerfile)" >&2
hadolint Dockerfile
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
