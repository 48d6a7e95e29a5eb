"""Lead tracking's pure rules: the ingest wire format, per-event validation, attribution,
device types, intent targets, session forming and lead scores (no framework, no I/O)."""
