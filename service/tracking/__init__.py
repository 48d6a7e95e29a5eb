"""Lead tracking for many sites: tenants and roles, the site script, ingest, sessions, intents
and the dashboard queries."""
