"""Pure-Python domain logic of kervan: no web framework, no I/O drivers."""
