"""Plain-Python reference implementations: the oracles for the compiled kernels."""
