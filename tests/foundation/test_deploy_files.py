"""The deployment files agree with the code, read as written (no kustomize needed): the image,
the entry points, the KEDA stream keys. tests/k8s checks the rendered overlays in depth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from service.ads.flush import UPLOAD_QUEUE
from service.backends import keys, memory_backends
from service.telegram.jobs import SEND_QUEUE as TELEGRAM_QUEUE
from service.whatsapp.outbound import AUTOREPLY_QUEUE, READ_QUEUE
from service.whatsapp.outbound import SEND_QUEUE as WHATSAPP_QUEUE

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"


def _doc(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def _base_config() -> dict[str, str]:
    lines = (K8S / "base" / "config.env").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line.strip() and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_deployments_run_serve_and_worker_with_probes_on_health_routes() -> None:
    api = _doc(K8S / "base" / "api-deployment.yaml")["spec"]["template"]["spec"]["containers"][0]
    assert api["args"][0] == "serve"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert api["startupProbe"]["httpGet"]["path"] == "/health"
    worker = _doc(K8S / "base" / "worker-deployment.yaml")["spec"]["template"]["spec"]
    assert worker["containers"][0]["args"] == ["worker"]


def test_keda_scales_workers_on_the_real_stream_keys() -> None:
    scaled = _doc(K8S / "autoscaling" / "worker-scaledobject.yaml")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "kervan-worker"
    groups = {
        t["metadata"]["stream"]: t["metadata"]["consumerGroup"]
        for t in scaled["spec"]["triggers"]
        if t["type"] == "redis-streams"
    }
    namespace = memory_backends(_base_config()["KERVAN_REDIS_NAMESPACE"])
    queues = (WHATSAPP_QUEUE, READ_QUEUE, AUTOREPLY_QUEUE, TELEGRAM_QUEUE, UPLOAD_QUEUE)
    expected = {namespace.key(keys.queue_stream(q)): keys.QUEUE_GROUP for q in queues}
    # The live-support chat history, on its way to the database through the worker.
    expected[namespace.key(keys.SUPPORT_HISTORY_STREAM)] = keys.SUPPORT_HISTORY_GROUP
    assert groups == expected


def test_dockerfile_runs_kervan_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER kervan" in text
    assert "HEALTHCHECK" in text and "/health" in text
    assert 'ENTRYPOINT ["kervan"]' in text
    assert "requirements.lock" in text
    # The paths the manifests mount writable emptyDirs on.
    assert "KERVAN_DATA_DIR=/var/lib/kervan" in text
    assert "NUMBA_CACHE_DIR=/tmp/" in text
