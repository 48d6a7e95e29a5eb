"""Rendering the kustomize overlays of ``k8s/`` and reading what the objects say.

Rendering uses the real kustomize: the ``kustomize`` binary when installed, else
``kubectl kustomize`` (the kustomize built into kubectl); without either the tests that need a
render are skipped (failed with ``KERVAN_REQUIRE_SERVICES=1``). CRD schemas come from
``k8s/schemas/`` (their source is named in each file).
"""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from tests.services import require_tool

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = ("dev", "prod")
SCHEMAS = K8S / "schemas"

Obj = dict[str, Any]


def kustomize_command() -> list[str]:
    found = shutil.which("kustomize")
    if found is not None:
        return [found, "build"]
    kubectl = require_tool(
        "kubectl", "it renders the kustomize overlays (`kubectl kustomize`), as `kustomize` would"
    )
    return [kubectl, "kustomize"]


def render_dir(path: Path) -> list[Obj]:
    """The objects kustomize builds from ``path``; a failed build fails the test."""
    done = subprocess.run(
        [*kustomize_command(), str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"kustomize build {path} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@cache
def _rendered(overlay: str) -> tuple[Obj, ...]:
    return tuple(render_dir(K8S / "overlays" / overlay))


def render(overlay: str) -> list[Obj]:
    """The overlay's objects (built once per run; each caller gets its own copy)."""
    return copy.deepcopy(list(_rendered(overlay)))


# ---------------------------------------------------------------- finding objects


def of_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[Obj], kind: str, name: str | None = None) -> Obj:
    found = [o for o in of_kind(objs, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: Obj) -> list[Obj]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: Obj, labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as these manifests use) picks ``labels``."""
    assert set(selector) <= {"matchLabels"}, f"selector kinds not handled here: {selector}"
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# ---------------------------------------------------------------- environment


@dataclass
class ContainerEnv:
    """What one container's environment holds, as far as the render says."""

    #: Variables whose value the render gives (ConfigMaps, literals, Secrets rendered too).
    values: dict[str, str] = field(default_factory=dict)
    #: Variables from a required key of a Secret the render does not hold (created out of band).
    required_secrets: set[str] = field(default_factory=set)
    #: Variables from an optional key of such a Secret (unset when the key is absent).
    optional_secrets: set[str] = field(default_factory=set)
    #: (Secret name, key) of every secret key the container reads.
    secret_keys: set[tuple[str, str]] = field(default_factory=set)

    @property
    def names(self) -> set[str]:
        return set(self.values) | self.required_secrets | self.optional_secrets


def _data(obj: Obj) -> dict[str, str]:
    values = dict(obj.get("data") or {})
    if obj["kind"] == "Secret":
        values = {k: base64.b64decode(v).decode() for k, v in values.items()}
        values.update(obj.get("stringData") or {})
    return values


def container_env(objs: list[Obj], container: Obj) -> ContainerEnv:
    env = ContainerEnv()
    held = {
        (o["kind"], o["metadata"]["name"]): _data(o)
        for o in objs
        if o["kind"] in ("ConfigMap", "Secret")
    }
    for source in container.get("envFrom", []):
        kind, ref = (
            ("ConfigMap", source["configMapRef"])
            if "configMapRef" in source
            else ("Secret", source["secretRef"])
        )
        assert (kind, ref["name"]) in held, f"envFrom names a {kind} not rendered: {ref['name']}"
        env.values.update(held[kind, ref["name"]])
    for item in container.get("env", []):
        name = item["name"]
        if "value" in item:
            env.values[name] = item["value"]
            continue
        source = item["valueFrom"]
        kind, ref = (
            ("Secret", source["secretKeyRef"])
            if "secretKeyRef" in source
            else ("ConfigMap", source["configMapKeyRef"])
        )
        if kind == "Secret":
            env.secret_keys.add((ref["name"], ref["key"]))
        if (kind, ref["name"]) in held:
            data = held[kind, ref["name"]]
            if ref["key"] in data:
                env.values[name] = data[ref["key"]]
            else:
                assert ref.get("optional"), f"{name}: key {ref['key']} missing from {ref['name']}"
        elif ref.get("optional"):
            env.optional_secrets.add(name)
        else:
            env.required_secrets.add(name)
    return env


# Values for required secrets that the render does not hold: valid, and plainly fake.
PLACEHOLDERS = {
    "KERVAN_DATABASE_URL": "mariadb+aiomysql://kervan:placeholder@mariadb:3306/kervan",
    "KERVAN_REDIS_URL": "redis://:placeholder@redis:6379/0",
    "KERVAN_COOKIE_SECRET": "placeholder-cookie-secret-of-at-least-32-bytes",
}


def environment(env: ContainerEnv) -> dict[str, str]:
    """The container's variables, required out-of-band secrets filled with placeholders."""
    values = dict(env.values)
    for name in env.required_secrets:
        values[name] = PLACEHOLDERS.get(name, "placeholder")
    return values


def setting_env_names() -> set[str]:
    from service.settings import Settings

    return {f"KERVAN_{name.upper()}" for name in Settings.model_fields}


def read_env_file(path: Path) -> dict[str, str]:
    """A kustomize/`--from-env-file` file: KEY=VALUE lines, # comments."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


# ---------------------------------------------------------------- probes, quantities


def prestop_seconds(container: Obj) -> float:
    """How long the container's preStop hook sleeps (0 without one)."""
    hook = container.get("lifecycle", {}).get("preStop")
    if hook is None:
        return 0.0
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = hook["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, f"preStop not understood: {command}"
    return float(command[1])


_QUANTITY = re.compile(r"^([0-9.]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_FACTORS = {
    None: 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}


def quantity_bytes(value: str | int) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"not a byte quantity: {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]


# ---------------------------------------------------------------- CRD schemas


def _closed(schema: Any) -> Any:
    """The schema with unknown fields refused wherever it lists the known ones, as
    ``kubectl apply --validate=strict`` refuses them (the API server would drop them)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@cache
def crd_schemas() -> dict[tuple[str, str], Obj]:
    """``(apiVersion, kind)`` -> the stored schema file (with its ``source``)."""
    found: dict[tuple[str, str], Obj] = {}
    for path in sorted(SCHEMAS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        found[f"{doc['group']}/{doc['version']}", doc["kind"]] = doc
    return found


def validate_custom(obj: Obj) -> None:
    """Validate a custom resource against its stored CRD schema; raises on any error."""
    key = (obj["apiVersion"], obj["kind"])
    schemas = crd_schemas()
    assert key in schemas, f"no CRD schema kept in k8s/schemas for {key}"
    validator = jsonschema.Draft7Validator(_closed(schemas[key]["openAPIV3Schema"]))
    errors = sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in errors]
        raise jsonschema.ValidationError("; ".join(lines))


# ---------------------------------------------------------------- PromQL


_METRIC = re.compile(r"(?<![A-Za-z0-9_:])kervan_[A-Za-z0-9_]+")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


def metric_names(expr: str) -> set[str]:
    """The kervan metric names a PromQL expression reads (label values left out)."""
    return set(_METRIC.findall(_STRING.sub('""', expr)))


def walk_exprs(value: Any) -> Iterator[str]:
    """Every PromQL string of a Grafana dashboard (targets and template queries)."""
    if isinstance(value, dict):
        for key, item in value.items():
            promql = key in ("expr", "definition") or (
                key == "query" and value.get("type") == "query"
            )
            if promql and isinstance(item, str):
                yield item
            else:
                yield from walk_exprs(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_exprs(item)


def _created_series_exported() -> bool:
    """Whether prometheus_client adds ``*_created`` series (kervan turns them off)."""
    from prometheus_client import CollectorRegistry, Counter

    probe = CollectorRegistry()
    Counter("probe", "probe", registry=probe).inc()
    return any(s.name.endswith("_created") for f in probe.collect() for s in f.samples)


@cache
def exported_metric_names() -> frozenset[str]:
    """Every series name kervan's registry exports: each family's name with the suffixes its
    type gets in the text exposition. Every module that defines metrics is imported first."""
    import importlib
    import pkgutil

    import service

    # The app's routes and features, as a server loads them, then any other metrics module.
    importlib.import_module("service.app")
    for module in pkgutil.walk_packages(service.__path__, "service."):
        if module.name.rsplit(".", 1)[-1] == "metrics":
            importlib.import_module(module.name)
    from service.metrics import REGISTRY

    created = _created_series_exported()
    names: set[str] = set()
    for family in REGISTRY.collect():
        base = family.name
        if family.type == "counter":
            names.add(f"{base}_total")
        elif family.type == "histogram":
            names |= {f"{base}_bucket", f"{base}_count", f"{base}_sum"}
        elif family.type == "summary":
            names |= {base, f"{base}_count", f"{base}_sum"}
        elif family.type == "info":
            names.add(f"{base}_info")
        else:
            names.add(base)
        if created and family.type in ("counter", "histogram", "summary"):
            names.add(f"{base}_created")
    return frozenset(names)
