"""The audit log: append-only records in hash chains, one per site and one for the platform."""
