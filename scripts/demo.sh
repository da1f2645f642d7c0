#!/usr/bin/env bash
# The demo command: installs what it needs, then runs the whole flow on this machine.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
EXTRAS=demo NEED_NODE=0 source scripts/bootstrap.sh
exec python -m walkme_dic_dev.demo "$@"
