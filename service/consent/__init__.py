"""Consent storage, audit export and the policy built from settings."""
