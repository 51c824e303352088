#!/usr/bin/env bash
# Create (once) the pinned Python venv used by scripts/gen_fixtures.py.
#   bash scripts/setup_venv.sh        -> prints the venv path
# The venv lives at ${NANOC_VENV:-<repo>/.venv}. A stamp file inside it records
# the hash of scripts/requirements.txt; when it matches, nothing is done.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
VENV="${NANOC_VENV:-$REPO/.venv}"
REQ="$SCRIPT_DIR/requirements.txt"
STAMP="$VENV/.nanoc-requirements.sha256"
PYTHON="${PYTHON:-python3}"

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    echo "$VENV"
    exit 0
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV" >&2
fi
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ" >&2
echo "$want" > "$STAMP"
echo "$VENV"
