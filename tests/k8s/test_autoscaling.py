"""Autoscaling (k8s/autoscaling, in the prod overlay): the API's HPA and the worker's KEDA
ScaledObject, on the real stream keys of the queues this configuration registers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.clock import SYSTEM_CLOCK
from service.backends import keys, memory_backends
from service.features import setup_features
from service.runtime import build_runtime
from service.settings import Settings
from service.support.history import BATCH as HISTORY_BATCH
from tests.k8s.manifests import (
    K8S,
    Obj,
    container_env,
    environment,
    exported_metric_names,
    of_kind,
    one,
    pod_spec,
    read_env_file,
    render,
    setting_env_names,
)


def worker_container(objs: list[Obj]) -> Obj:
    container: Obj = pod_spec(one(objs, "Deployment", "kervan-worker"))["containers"][0]
    return container


def worker_env(objs: list[Obj]) -> dict[str, str]:
    return environment(container_env(objs, worker_container(objs)))


async def registered_queues(env: dict[str, str], tmp_path: Path) -> list[str]:
    """The queues a worker with this environment works: every feature set up as `kervan
    worker` does, on a throw-away embedded runtime (which handlers are registered depends on
    the providers configured, not on where the queue lives)."""
    values = {k: v for k, v in env.items() if k != "KERVAN_REDIS_URL"}
    values |= {
        "KERVAN_QUEUE_BACKEND": "sql",
        "KERVAN_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'q.db'}",
        "KERVAN_DATA_DIR": str(tmp_path),
    }
    mp = pytest.MonkeyPatch()
    try:
        for name in list(os.environ):
            if name.startswith("KERVAN_"):
                mp.delenv(name)
        for name, value in values.items():
            mp.setenv(name, value)
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
    finally:
        mp.undo()
    runtime = build_runtime(settings, SYSTEM_CLOCK)
    try:
        await setup_features(runtime)
        return runtime.handlers.queues()
    finally:
        await runtime.close()


def stream_triggers(scaled: Obj) -> list[Obj]:
    return [t for t in scaled["spec"]["triggers"] if t["type"] == "redis-streams"]


# ---------------------------------------------------------------- the API's HPA


def test_api_hpa_scales_on_cpu_and_websocket_connections() -> None:
    objs = render("prod")
    hpa = one(objs, "HorizontalPodAutoscaler", "kervan-api")
    target = hpa["spec"]["scaleTargetRef"]
    assert target["kind"] == "Deployment"
    one(objs, "Deployment", target["name"])
    metrics = hpa["spec"]["metrics"]
    cpu = [m for m in metrics if m["type"] == "Resource" and m["resource"]["name"] == "cpu"]
    assert cpu and cpu[0]["resource"]["target"]["type"] == "Utilization"
    pods = [m["pods"] for m in metrics if m["type"] == "Pods"]
    assert [p["metric"]["name"] for p in pods] == ["kervan_support_connections"]
    assert pods[0]["target"]["type"] == "AverageValue"
    # The adapter serves kervan's own gauge under its own name.
    assert "kervan_support_connections" in exported_metric_names()
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_api_hpa_behaviour_damps_flapping() -> None:
    behavior = one(render("prod"), "HorizontalPodAutoscaler")["spec"]["behavior"]
    down, up = behavior["scaleDown"], behavior["scaleUp"]
    assert down["stabilizationWindowSeconds"] >= 300
    assert down["policies"] and down["selectPolicy"] == "Min"
    assert all(p["periodSeconds"] >= 60 for p in down["policies"])
    assert up["policies"]
    assert up["stabilizationWindowSeconds"] < down["stabilizationWindowSeconds"]


def test_autoscaled_deployments_set_no_replicas_of_their_own() -> None:
    objs = render("prod")
    targets = {
        h["spec"]["scaleTargetRef"]["name"] for h in of_kind(objs, "HorizontalPodAutoscaler")
    }
    targets |= {s["spec"]["scaleTargetRef"]["name"] for s in of_kind(objs, "ScaledObject")}
    assert targets == {"kervan-api", "kervan-worker"}
    for name in targets:
        assert "replicas" not in one(objs, "Deployment", name)["spec"], name


# ---------------------------------------------------------------- the worker's ScaledObject


async def test_keda_scales_workers_on_the_streams_of_the_registered_queues(
    tmp_path: Path,
) -> None:
    objs = render("prod")
    env = worker_env(objs)
    queues = await registered_queues(env, tmp_path)
    assert {"wa.send", "telegram"} <= set(queues)
    # The same key builder and constants as the Redis Streams queue (service/queue/redis_streams).
    names = memory_backends(env["KERVAN_REDIS_NAMESPACE"])
    expected = {names.key(keys.queue_stream(q)): keys.QUEUE_GROUP for q in queues}
    # The worker's other stream: the live-support chat history on its way to the database.
    expected[names.key(keys.SUPPORT_HISTORY_STREAM)] = keys.SUPPORT_HISTORY_GROUP
    triggers = stream_triggers(one(objs, "ScaledObject", "kervan-worker"))
    assert {t["metadata"]["stream"] for t in triggers} == set(expected)
    for trigger in triggers:
        meta = trigger["metadata"]
        assert meta["consumerGroup"] == expected[meta["stream"]], meta["stream"]


async def test_the_stream_check_sees_a_missing_provider(tmp_path: Path) -> None:
    """Without a Telegram bot token its queue (and stream) does not exist."""
    env = worker_env(render("prod"))
    del env["KERVAN_TELEGRAM_BOT_TOKEN"]
    assert "telegram" not in await registered_queues(env, tmp_path)


def test_each_stream_scales_on_lag_and_holds_on_pending_entries() -> None:
    objs = render("prod")
    env = worker_env(objs)
    concurrency = env.get(
        "KERVAN_QUEUE_CONCURRENCY", str(Settings.model_fields["queue_concurrency"].default)
    )
    history = memory_backends(env["KERVAN_REDIS_NAMESPACE"]).key(keys.SUPPORT_HISTORY_STREAM)
    by_stream: dict[str, dict[str, Obj]] = {}
    for trigger in stream_triggers(one(objs, "ScaledObject")):
        meta = trigger["metadata"]
        mode = "lag" if "lagCount" in meta else "pending"
        assert mode not in by_stream.setdefault(meta["stream"], {}), meta["stream"]
        by_stream[meta["stream"]][mode] = meta
    for stream, modes in by_stream.items():
        assert set(modes) == {"lag", "pending"}, stream
        lag = modes["lag"]
        assert int(lag["lagCount"]) > 0 and "activationLagCount" in lag
        assert "streamLength" not in lag and "pendingEntriesCount" not in lag
        # One worker runs KERVAN_QUEUE_CONCURRENCY jobs at once; its history writer holds one
        # batch.
        held = str(HISTORY_BATCH) if stream == history else concurrency
        assert modes["pending"]["pendingEntriesCount"] == held, stream
    assert history in by_stream


def test_scaled_object_never_scales_to_zero_and_authenticates() -> None:
    objs = render("prod")
    scaled = one(objs, "ScaledObject", "kervan-worker")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "kervan-worker"
    # /ready of every API pod needs a fresh worker heartbeat.
    assert spec["minReplicaCount"] >= 1
    assert spec["maxReplicaCount"] > spec["minReplicaCount"]
    assert (
        spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"][
            "stabilizationWindowSeconds"
        ]
        >= 60
    )
    auths = {a["metadata"]["name"]: a for a in of_kind(objs, "TriggerAuthentication")}
    for trigger in spec["triggers"]:
        auth = auths[trigger["authenticationRef"]["name"]]
        assert {r["parameter"] for r in auth["spec"]["secretTargetRef"]} == {"password"}


def test_every_secret_key_prod_reads_is_in_the_example() -> None:
    """The prod Secret is made out of band: secrets.example.env lists exactly the keys that the
    containers, KEDA and Prometheus read from it."""
    objs = render("prod")
    used: set[tuple[str, str]] = set()
    for workload in of_kind(objs, "Deployment"):
        for container in pod_spec(workload)["containers"]:
            used |= container_env(objs, container).secret_keys
    for auth in of_kind(objs, "TriggerAuthentication"):
        used |= {(r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    for monitor in of_kind(objs, "ServiceMonitor"):
        for endpoint in monitor["spec"]["endpoints"]:
            credentials = endpoint["authorization"]["credentials"]
            used.add((credentials["name"], credentials["key"]))
    assert {name for name, _ in used} == {"kervan-secrets"}
    example = read_env_file(K8S / "overlays" / "prod" / "secrets.example.env")
    assert {key for _, key in used} == set(example)
    assert {k for k in example if k.startswith("KERVAN_")} <= setting_env_names()
