"""Run every bench script in turn: ``python -m bench [NAME-FILTER ...]``.

Each ``bench/bench_*.py`` and ``bench/load_*.py`` is a standalone script that prints its table
and writes ``bench/results/<name>.json``; they run one after another, never concurrently, so
that no bench steals the other's cores on a small machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted([*HERE.glob("bench_*.py"), *HERE.glob("load_*.py")])
    if argv:
        scripts = [s for s in scripts if any(f in s.stem for f in argv)]
    failed: list[str] = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        started = time.monotonic()
        code = subprocess.call([sys.executable, str(script)], cwd=HERE.parent)
        print(f"=== {script.stem}: exit {code} in {time.monotonic() - started:.0f}s ===")
        if code != 0:
            failed.append(script.stem)
    if failed:
        print("failed:", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
