#!/usr/bin/env python3
"""Regenerate the ONNX backend *node* test cases into a cache directory.

Usage (from the repo root; the wrapper picks the venv and the cache dir):
    bash scripts/onnx_node_tests.sh
    .venv/bin/python scripts/gen_onnx_node_tests.py OUT_DIR [--force]

Recent ``onnx`` wheels no longer ship ``onnx/backend/test/data/node`` but do
ship its generators (``onnx.backend.test.case.node``) and the writer behind
``backend-test-tools generate-data`` (``onnx.backend.test.cmd_tools``). This
script runs that writer over the node cases only, so every case is written
exactly as upstream writes it:

    OUT_DIR/<case>/model.onnx
    OUT_DIR/<case>/test_data_set_0/input_<i>.pb, output_<i>.pb

Generation goes to a staging directory that replaces OUT_DIR only when it is
complete. ``OUT_DIR/.stamp`` records the onnx version and this script's hash;
when it matches, nothing is done (use ``--force`` to regenerate anyway).
``OUT_DIR/CASES.txt`` lists the generated cases, sorted.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import time
import warnings
from pathlib import Path


def stamp_text() -> str:
    import onnx

    digest = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
    return f"onnx {onnx.__version__}\nscript {digest}\n"


def generate(out: Path) -> int:
    # The generators compute expected outputs with numpy and deliberately hit
    # overflow/divide-by-zero in a few cases (inf/NaN expectations).
    warnings.simplefilter("ignore")
    import onnx.backend.test.case.node as node_cases
    from onnx.backend.test import cmd_tools

    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    # `generate_data` writes `<output>/<kind>/<name>/` for every case that
    # `cmd_tools.model_test.collect_testcases()` returns; point it at the
    # node-case collector instead of the model-case one.
    cmd_tools.model_test = node_cases  # type: ignore[assignment]
    cmd_tools.generate_data(argparse.Namespace(output=str(staging)))
    produced = staging / "node"
    names = sorted(p.name for p in produced.iterdir() if p.is_dir())
    (produced / "CASES.txt").write_text("".join(f"{n}\n" for n in names))
    (produced / ".stamp").write_text(stamp_text())
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    produced.rename(out)
    shutil.rmtree(staging)
    return len(names)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path, help="output directory (e.g. .cache/onnx-node-tests)")
    ap.add_argument("--force", action="store_true", help="regenerate even if the stamp matches")
    args = ap.parse_args()
    out: Path = args.out.resolve()
    stamp = out / ".stamp"
    if not args.force and stamp.is_file() and stamp.read_text() == stamp_text():
        count = sum(1 for p in out.iterdir() if p.is_dir())
        print(f"onnx node tests: up to date ({count} cases in {out})")
        return 0
    t0 = time.monotonic()
    count = generate(out)
    print(f"onnx node tests: generated {count} cases in {time.monotonic() - t0:.1f}s into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
