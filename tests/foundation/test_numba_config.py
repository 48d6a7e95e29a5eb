"""Numba's cache goes to a writable folder when the package folder is read-only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import os, native.numba_config as c
print(os.environ.get("NUMBA_CACHE_DIR", ""))
print(c.NJIT["cache"], c.NJIT_PARALLEL["parallel"])
"""


def _run(env_extra: dict[str, str], pythonpath: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(env_extra, PYTHONPATH=pythonpath)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_writable_package_keeps_numba_default() -> None:
    assert _run({}, str(ROOT)) == ["", "True True"]


def test_explicit_cache_dir_is_respected(tmp_path: Path) -> None:
    assert _run({"NUMBA_CACHE_DIR": str(tmp_path)}, str(ROOT))[0] == str(tmp_path)


def test_read_only_package_gets_a_writable_cache(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root can write to read-only folders, so emulate the check failing instead.
        probe_env = {"PYTHONSTARTUP": ""}
        code = (
            "import os; real = os.access; "
            "os.access = lambda p, m: False if str(p).endswith('native') else real(p, m); "
            + PROBE.replace("\n", "; ").strip("; ")
        )
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        env.update(probe_env, PYTHONPATH=str(ROOT))
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        cache_dir = out.stdout.splitlines()[0]
    else:
        copy = tmp_path / "pkg"
        (copy / "native").mkdir(parents=True)
        for name in ("__init__.py", "numba_config.py"):
            (copy / "native" / name).write_text((ROOT / "native" / name).read_text())
        (copy / "native").chmod(0o555)
        cache_dir = _run({}, str(copy))[0]
    assert cache_dir.endswith("kervan-numba-cache")
    assert os.access(cache_dir, os.W_OK)
