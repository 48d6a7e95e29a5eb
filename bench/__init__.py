"""Benchmarks and load tests (not part of ``make test``); run them with ``make bench``."""
