"""The one place where Numba compilation flags are decided.

Every ``@njit`` in ``native/`` takes its options from here so that caching, fast-math and
threading behave the same for all kernels. Numba caches compiled code next to the module; when
the package folder is read-only (a wheel installed as root, a container image), the cache goes
to a writable folder instead, set through ``NUMBA_CACHE_DIR`` before Numba is imported.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

_PACKAGE_DIR = Path(__file__).resolve().parent


def _ensure_cache_dir() -> None:
    # Numba reads NUMBA_CACHE_DIR when it first caches; this module is imported by every
    # kernel module before numba itself, so setting the variable here is early enough.
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    if os.access(_PACKAGE_DIR, os.W_OK):
        return
    fallback = Path(tempfile.gettempdir()) / "kervan-numba-cache"
    fallback.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(fallback)


_ensure_cache_dir()

#: Options for serial kernels.
NJIT: dict[str, Any] = {"cache": True, "nogil": True, "fastmath": False, "error_model": "numpy"}

#: Options for kernels parallelised with ``prange``.
NJIT_PARALLEL: dict[str, Any] = {**NJIT, "parallel": True}
