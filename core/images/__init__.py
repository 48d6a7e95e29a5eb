"""Progressive-image domain logic: width ladder, signed URLs, format negotiation, SSRF rules,
input limits, manifests and colour summaries. Pure Python, no I/O."""
