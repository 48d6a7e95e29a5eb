"""Progressive images: original storage, SSRF-safe fetching, libvips ingest, variants and tiles."""
