"""Degrade mode: when to shed low-priority work, with hysteresis."""
