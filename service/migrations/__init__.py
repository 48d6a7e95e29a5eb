"""Alembic migrations (run with ``kervan migrate``, which upgrades every branch head)."""
