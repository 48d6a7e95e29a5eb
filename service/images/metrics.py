"""Prometheus metrics of the images feature."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from service.metrics import REGISTRY

IMAGE_RENDERS = Counter(
    "kervan_image_renders_total",
    "Variants rendered by libvips (cache misses), by output format.",
    ["format"],
    registry=REGISTRY,
)
IMAGE_RENDER_SECONDS = Histogram(
    "kervan_image_render_seconds",
    "Time to render one variant with libvips, waiting for a render slot excluded.",
    ["format"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
IMAGE_INGESTS = Counter(
    "kervan_image_ingests_total",
    "Image ingests by outcome (stored, or the refusal code).",
    ["outcome"],
    registry=REGISTRY,
)
IMAGE_CACHE_BYTES = Gauge(
    "kervan_image_cache_bytes",
    "Bytes of rendered variants, tile pyramids and local copies of originals on disk after "
    "the last sweep.",
    registry=REGISTRY,
)
IMAGE_CACHE_EVICTIONS = Counter(
    "kervan_image_cache_evictions_total",
    "Cache entries dropped to keep the image caches within their disk budget, by kind.",
    ["kind"],
    registry=REGISTRY,
)
IMAGE_STORE_FAILURES = Counter(
    "kervan_image_store_failures_total",
    "Failed calls to the originals' storage (answered 503), by storage and operation.",
    ["storage", "operation"],
    registry=REGISTRY,
)
IMAGE_ORIGINAL_READS = Counter(
    "kervan_image_original_reads_total",
    "Originals read to render variants or tiles, by source: this process's local copy, or "
    "the shared storage.",
    ["source"],
    registry=REGISTRY,
)
