"""Compiled kernels: Cython extensions (``_*.pyx`` with ``.pyi`` stubs) and Numba modules.

Each kernel has a private compiled core and a thin public wrapper that validates its input.
"""
