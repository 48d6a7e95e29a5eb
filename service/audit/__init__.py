"""The audit log: who changed what, when, through which request; append-only and hash-chained.

``record_audit`` writes in the caller's transaction (``service/audit/log.py``); reads are
``list_audit`` (tests and tools), the per-site and platform queries (``service/audit/
queries.py``) and chain verification (``service/audit/verify.py``).
"""

from service.audit.log import list_audit, record_audit

__all__ = ["list_audit", "record_audit"]
