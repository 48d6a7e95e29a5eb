"""Speculation rules service: the flow edge store, session pairing, the per-segment cache."""
