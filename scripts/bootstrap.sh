#!/usr/bin/env bash
# Creates .venv and installs walkme-dic with its dev extras; puts the dev package (dev/walkme_dic_dev:
# control plane, node agent, demo, fake WalkMe; never in the image) on the venv's path; installs Azurite
# with npm ci; builds the control plane (scripts/build-controlplane.sh, cached by version).
# Sourced by scripts/test.sh and scripts/demo.sh; safe to run again (it only installs what changed).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
EXTRAS="${EXTRAS:-dev}"
STAMP="$VENV/.installed-$EXTRAS-$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ]; then
  echo "bootstrap: installing walkme-dic[$EXTRAS] into .venv" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[$EXTRAS]"
  rm -f "$VENV"/.installed-"$EXTRAS"-* && touch "$STAMP"
fi
if [ "${NEED_NODE:-1}" = "1" ] && [ -f "$ROOT/package-lock.json" ] && [ ! -x "$ROOT/node_modules/.bin/azurite-blob" ]; then
  echo "bootstrap: npm ci (Azurite)" >&2
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
fi
site_packages="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_path("purelib"))')"
echo "$ROOT/dev" > "$site_packages/walkme_dic_dev.pth"
if [ "${NEED_CONTROL_PLANE:-1}" = "1" ]; then
  WALKME_DIC_CONTROLPLANE_BIN="$(bash "$ROOT/scripts/build-controlplane.sh")"
  export WALKME_DIC_CONTROLPLANE_BIN
fi
export PATH="$VENV/bin:$PATH"
