"""The rendered Deployments agree with kervan: real commands and routes, environment variables
that are settings (and load as valid settings), writable paths on emptyDirs under a read-only
root, termination grace covering the drains, requests/limits, spread and disruption budgets."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from starlette.routing import Match

from service import cli
from service.app import create_app
from service.queue.worker import STOP_MARGIN
from service.runtime import COMPONENT_STOP_TIMEOUT_SECONDS
from service.settings import Settings
from tests.k8s.manifests import (
    OVERLAYS,
    ROOT,
    Obj,
    container_env,
    containers,
    environment,
    of_kind,
    one,
    pod_spec,
    prestop_seconds,
    quantity_bytes,
    render,
    selects,
    setting_env_names,
)

#: Seconds a pod's grace must leave beyond what kervan's own shutdown may take.
GRACE_MARGIN = 5.0


def load_settings_of(objs: list[Obj], container: Obj, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings the container's process would read: its variables only (required secrets
    the render does not hold filled with placeholders), as environment variables."""
    for name in list(os.environ):
        if name.startswith("KERVAN_"):
            monkeypatch.delenv(name)
    for name, value in environment(container_env(objs, container)).items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def deployments(overlay: str) -> list[Obj]:
    return of_kind(render(overlay), "Deployment")


def kervan_container(workload: Obj) -> Obj:
    found: list[Obj] = [c for c in pod_spec(workload)["containers"] if c["name"] == "kervan"]
    assert len(found) == 1, workload["metadata"]["name"]
    return found[0]


def _app_routes(tmp_path: Path) -> list[object]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", data_dir=tmp_path
    )
    app = create_app(settings)
    return [*app.routes, *app.edge.static_routes.values()]


def get_route_exists(routes: list[object], path: str) -> bool:
    scope = {"type": "http", "path": path, "method": "GET"}
    for route in routes:
        if getattr(route, "template", None) == path:  # a fast route of the edge
            return True
        matches = getattr(route, "matches", None)
        if matches is not None and matches(scope)[0] is Match.FULL:
            return True
    return False


# ---------------------------------------------------------------- commands, probes


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_containers_run_real_kervan_commands(overlay: str) -> None:
    parser = cli.build_parser()
    commands = {}
    for workload in deployments(overlay):
        for container in containers(workload):
            args = container.get("args", [])
            assert "command" not in container, "the image's entrypoint is `kervan`"
            parsed = parser.parse_args(args)
            commands[workload["metadata"]["name"]] = parsed.command
    assert commands == {"kervan-api": "serve", "kervan-worker": "worker"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probes_point_at_real_routes(overlay: str, tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    api = kervan_container(one(render(overlay), "Deployment", "kervan-api"))
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    assert "startupProbe" in api
    ports = {p["name"]: p["containerPort"] for p in api["ports"]}
    for workload in deployments(overlay):
        for container in containers(workload):
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = container.get(kind)
                if probe is None:
                    continue
                path = probe["httpGet"]["path"]
                assert get_route_exists(routes, path), f"{kind} {path}: no such GET route"
                assert probe["httpGet"]["port"] in ports or probe["httpGet"]["port"] in set(
                    ports.values()
                )


def test_route_check_can_fail(tmp_path: Path) -> None:
    routes = _app_routes(tmp_path)
    assert get_route_exists(routes, "/ready") and get_route_exists(routes, "/health")
    assert not get_route_exists(routes, "/healthz")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_container_port_is_the_served_port(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = render(overlay)
    api = kervan_container(one(objs, "Deployment", "kervan-api"))
    settings = load_settings_of(objs, api, monkeypatch)
    # Reachable from the kubelet and the Service.
    assert settings.host == "0.0.0.0"
    assert [p["containerPort"] for p in api["ports"]] == [settings.port]
    service = one(objs, "Service", "kervan-api")
    assert selects({"matchLabels": service["spec"]["selector"]}, api_labels(objs))
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {p["name"] for p in api["ports"]}


def api_labels(objs: list[Obj]) -> dict[str, str]:
    labels: dict[str, str] = one(objs, "Deployment", "kervan-api")["spec"]["template"]["metadata"][
        "labels"
    ]
    return labels


# ---------------------------------------------------------------- environment and settings


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_environment_variable_is_a_setting(overlay: str) -> None:
    objs = render(overlay)
    known = setting_env_names()
    for workload in deployments(overlay):
        for container in containers(workload):
            unknown = container_env(objs, container).names - known
            assert not unknown, f"{workload['metadata']['name']}: not settings: {sorted(unknown)}"
    for secret in of_kind(objs, "Secret"):
        unknown = set(secret.get("data", {})) - known
        assert not unknown, f"Secret keys that are no setting: {sorted(unknown)}"


def test_the_env_name_check_can_fail() -> None:
    assert "KERVAN_QUEUE_SHUTDOWN_GRACE_SECONDS" in setting_env_names()
    assert "KERVAN_QUEUE_SHUTDOWN_GRACE" not in setting_env_names()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_both_containers_read_the_same_settings(overlay: str) -> None:
    objs = render(overlay)
    envs = [container_env(objs, kervan_container(w)) for w in deployments(overlay)]
    assert len(envs) == 2
    assert envs[0].names == envs[1].names
    assert envs[0].values == envs[1].values


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_container_loads_valid_settings(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = render(overlay)
    for workload in deployments(overlay):
        settings = load_settings_of(objs, kervan_container(workload), monkeypatch)
        # Scaled mode: shared state in Redis, a server database, the worker in its own pods.
        assert settings.redis_url is not None
        assert not settings.is_sqlite
        assert cli.queue_backend(settings) == "redis"
        assert not cli.worker_embedded(settings)
        assert settings.workers == 1
        assert settings.env == ("production" if overlay == "prod" else "development")
        if overlay == "prod":
            assert settings.log_format == "json"


def test_prod_secrets_come_from_the_secret_not_the_config() -> None:
    objs = render("prod")
    env = container_env(objs, kervan_container(one(objs, "Deployment", "kervan-api")))
    secret_ish = re.compile(r"SECRET|TOKEN|PASSWORD|_KEY$|DATABASE_URL|REDIS_URL")
    in_config = {name for name in env.values if secret_ish.search(name)}
    assert not in_config, f"secret settings in the ConfigMap: {sorted(in_config)}"
    assert env.required_secrets >= {
        "KERVAN_DATABASE_URL",
        "KERVAN_REDIS_URL",
        "KERVAN_COOKIE_SECRET",
        "KERVAN_METRICS_TOKEN",
    }


# ---------------------------------------------------------------- security and disks


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pods_run_non_root_on_a_read_only_root(overlay: str) -> None:
    for workload in deployments(overlay):
        spec = pod_spec(workload)
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert pod["runAsUser"] != 0 and pod["runAsGroup"] != 0
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        # Service links would put KERVAN_* variables of their own into the environment.
        assert spec["enableServiceLinks"] is False
        for container in containers(workload):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["capabilities"]["drop"] == ["ALL"]


def _image_env() -> dict[str, str]:
    """The ENV of the Dockerfile's runtime stage."""
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime") :]
    return dict(re.findall(r"\b([A-Z_]+)=(\S+?)(?=\s|\\|$)", runtime.split("RUN", 1)[0]))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_path_kervan_writes_is_a_mounted_empty_dir(
    overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objs = render(overlay)
    image_env = _image_env()
    assert image_env["NUMBA_CACHE_DIR"].startswith("/")
    for workload in deployments(overlay):
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec["volumes"]}
        container = kervan_container(workload)
        settings = load_settings_of(objs, container, monkeypatch)
        writable = {
            Path(m["mountPath"]): volumes[m["name"]]
            for m in container["volumeMounts"]
            if not m.get("readOnly") and "emptyDir" in volumes[m["name"]]
        }
        images_dir = settings.images_dir or settings.data_dir / "images"
        for path in (
            settings.data_dir,
            images_dir,
            Path(image_env["NUMBA_CACHE_DIR"]),
            # tempfile's directory in the image (TMPDIR unset).
            Path("/tmp"),
        ):
            assert path.is_absolute(), f"{path}: relative to the read-only working directory"
            assert any(path.is_relative_to(m) for m in writable), f"{path} is not writable"
        if workload["metadata"]["name"] == "kervan-api":
            # The variants cache budget must fit the volume it lives on, originals besides.
            holder = next(v for m, v in writable.items() if images_dir.is_relative_to(m))
            limit = quantity_bytes(holder["emptyDir"]["sizeLimit"])
            assert settings.images_cache_max_bytes > 0
            assert settings.images_cache_max_bytes <= 0.75 * limit


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_termination_grace_covers_the_drains(overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    objs = render(overlay)
    drains = [name for name in Settings.model_fields if "drain" in name]
    assert "support_drain_seconds" in drains  # the WebSocket drain runs before the shutdown
    for workload in deployments(overlay):
        container = kervan_container(workload)
        settings = load_settings_of(objs, container, monkeypatch)
        grace = pod_spec(workload)["terminationGracePeriodSeconds"]
        # preStop runs first, then SIGTERM: the runtime stops components in turn.
        needed = prestop_seconds(container) + COMPONENT_STOP_TIMEOUT_SECONDS
        name = workload["metadata"]["name"]
        if name == "kervan-worker" or cli.worker_embedded(settings):
            # The queue worker lets in-flight jobs run for the shutdown grace, then releases
            # the rest (its stop_timeout), before the other components stop.
            needed += settings.queue_shutdown_grace_seconds + STOP_MARGIN
        if name == "kervan-api":
            # Any drain the API does before exiting (e.g. telling WebSocket clients to go).
            needed += sum(float(getattr(settings, d)) for d in drains)
        assert grace >= needed + GRACE_MARGIN, f"{name}: grace {grace}s < {needed}s + margin"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_leaves_the_load_balancers_before_stopping(overlay: str) -> None:
    api = kervan_container(one(render(overlay), "Deployment", "kervan-api"))
    assert prestop_seconds(api) >= 5


# ---------------------------------------------------------------- capacity and placement


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_and_a_memory_limit(overlay: str) -> None:
    for workload in deployments(overlay):
        for container in containers(workload):
            resources = container["resources"]
            assert set(resources["requests"]) >= {"cpu", "memory"}
            request = quantity_bytes(resources["requests"]["memory"])
            assert quantity_bytes(resources["limits"]["memory"]) >= request


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_spread_and_disruption_budget_cover_each_deployment(overlay: str) -> None:
    objs = render(overlay)
    budgets = of_kind(objs, "PodDisruptionBudget")
    for workload in deployments(overlay):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        constraints = pod_spec(workload)["topologySpreadConstraints"]
        assert any(
            c["topologyKey"] == "kubernetes.io/hostname" and selects(c["labelSelector"], labels)
            for c in constraints
        )
        mine = [b for b in budgets if selects(b["spec"]["selector"], labels)]
        assert len(mine) == 1, workload["metadata"]["name"]
        # A budget that a single replica cannot satisfy would block every node drain.
        assert mine[0]["spec"].get("maxUnavailable", 0) >= 1
