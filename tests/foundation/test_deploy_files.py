"""The deployment files agree with the code: probes, entry points, KEDA stream keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from service.backends import keys
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "k8s" / name).read_text()) if d]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind)


def test_api_deployment_probes_and_autoscaling() -> None:
    docs = _docs("api.yaml")
    container = _by_kind(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    hpa = _by_kind(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "kervan-api"
    assert hpa["spec"]["minReplicas"] >= 2


def test_keda_scales_workers_on_the_real_stream_keys() -> None:
    docs = _docs("worker.yaml")
    deployment = _by_kind(docs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["worker"]
    scaled = _by_kind(docs, "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    namespace = _by_kind(_docs("configmap.yaml"), "ConfigMap")["data"]["KERVAN_REDIS_NAMESPACE"]
    streams = {
        t["metadata"]["stream"] for t in scaled["spec"]["triggers"] if t["type"] == "redis-streams"
    }
    from service.telegram.jobs import SEND_QUEUE as TELEGRAM_QUEUE
    from service.whatsapp.outbound import SEND_QUEUE as WHATSAPP_QUEUE

    expected = {f"{namespace}:{keys.QUEUE_STREAM}:{q}" for q in (WHATSAPP_QUEUE, TELEGRAM_QUEUE)}
    assert streams == expected


def test_configmap_names_only_real_settings() -> None:
    data = _by_kind(_docs("configmap.yaml"), "ConfigMap")["data"]
    secret = _by_kind(_docs("secret.example.yaml"), "Secret")["stringData"]
    known = {f"KERVAN_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= known
    assert set(secret) <= known


def test_dockerfile_runs_kervan_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER kervan" in text
    assert "HEALTHCHECK" in text and "/health" in text
    assert 'ENTRYPOINT ["kervan"]' in text
    assert "requirements.lock" in text
