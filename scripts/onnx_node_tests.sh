#!/usr/bin/env bash
# Generate (once) the ONNX backend node test cases for
# tests/tests/onnx_conformance.rs, with the pinned venv of scripts/setup_venv.sh.
#   bash scripts/onnx_node_tests.sh [--force]   -> prints the cache path
# Cases go to ${NANOC_CACHE:-<repo>/.cache}/onnx-node-tests/<case>/ (git-ignored);
# a stamp there (onnx version + generator hash) makes re-runs a no-op.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
CACHE="${NANOC_CACHE:-$REPO/.cache}"
OUT="$CACHE/onnx-node-tests"

VENV="$(bash "$SCRIPT_DIR/setup_venv.sh")"
"$VENV/bin/python" "$SCRIPT_DIR/gen_onnx_node_tests.py" "$OUT" "$@" >&2
echo "$OUT"
