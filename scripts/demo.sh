#!/usr/bin/env bash
# The demo command: installs what it needs (the venv, the control plane built from Go modules on first
# use, bubblewrap for the node agent), then runs the whole flow on this machine: dev/walkme_dic_dev/demo.py.
# Extra arguments go to the demo: bash scripts/demo.sh --keep-running
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS=demo NEED_NODE=0 source scripts/bootstrap.sh
source scripts/debian-packages.sh
ensure_debian_package bwrap bubblewrap   # the node agent runs every Pod's containers in a bubblewrap sandbox
ensure_debian_package setpriv util-linux # ... as the Pod's uid (runAsUser), with no capabilities
exec python -m walkme_dic_dev.demo "$@"
