"""Offline conversions to Google Ads: per-site connections, uploads of sealed intents, outcomes."""
