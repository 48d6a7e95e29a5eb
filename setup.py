"""Builds the compiled kernels of ``native/``.

Each kernel module is declared explicitly, one ``Extension`` per ``.pyx``, so a broken kernel
fails its own build and nothing is silently bundled. ``KERVAN_DEBUG=1`` turns on line tracing
(for coverage and profilers) and writes Cython's HTML annotation next to each source.
"""

from __future__ import annotations

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("KERVAN_DEBUG") == "1"

DIRECTIVES: dict[str, object] = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "embedsignature": True,
}
MACROS: list[tuple[str, str | None]] = []
if DEBUG:
    DIRECTIVES["linetrace"] = True
    MACROS += [("CYTHON_TRACE", "1"), ("CYTHON_TRACE_NOGIL", "1")]

COMPILE_ARGS = ["-O0", "-g"] if DEBUG else ["-O3"]


def kernel(name: str) -> Extension:
    """One extension for the kernel ``native/<name>.pyx``, importable as ``native.<name>``."""
    return Extension(
        f"native.{name}",
        [f"native/{name}.pyx"],
        define_macros=MACROS,
        extra_compile_args=COMPILE_ARGS,
    )


EXTENSIONS = [
    kernel("_gcra"),
    kernel("_limiter"),
    kernel("_blurhash"),
    kernel("_sigwindow"),
    kernel("_edgepath"),
]

setup(
    ext_modules=cythonize(
        EXTENSIONS,
        compiler_directives=DIRECTIVES,
        annotate=DEBUG,
    ),
)
