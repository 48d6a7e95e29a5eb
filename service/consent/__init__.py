"""Consent: storage, the API's operations, audit export and the policy built from settings."""
