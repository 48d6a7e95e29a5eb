"""Every overlay renders with kustomize, and every object it makes validates: built-in kinds
against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are
errors), KEDA and Prometheus Operator resources against their CRD schemas in k8s/schemas."""

from __future__ import annotations

import re

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.k8s.manifests import (
    K8S,
    OVERLAYS,
    SCHEMAS,
    Obj,
    one,
    render,
    validate_custom,
)

#: The oldest Kubernetes these manifests are written for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CUSTOM_GROUPS = ("keda.sh/", "monitoring.coreos.com/")


def _validate(obj: Obj) -> None:
    if obj["apiVersion"].startswith(CUSTOM_GROUPS):
        validate_custom(obj)
        return
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(obj, version, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_of_the_overlay_validates(overlay: str) -> None:
    objs = render(overlay)
    assert {o["kind"] for o in objs} >= {"Deployment", "Service", "ConfigMap"}
    problems = []
    for obj in objs:
        try:
            _validate(obj)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc}")
    assert not problems, "\n".join(problems)


def test_prod_has_the_autoscaling_and_monitoring_resources() -> None:
    kinds = {o["kind"] for o in render("prod")}
    assert kinds >= {
        "HorizontalPodAutoscaler",
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
        "PrometheusRule",
        "PodDisruptionBudget",
    }


def test_every_object_is_namespaced_by_the_overlay() -> None:
    for overlay, namespace in (("dev", "kervan-dev"), ("prod", "kervan")):
        assert {o["metadata"].get("namespace") for o in render(overlay)} == {namespace}


def test_the_validators_refuse_mistakes() -> None:
    """The checks above can fail: a misspelt field of a built-in kind and of each CRD kind."""
    objs = render("prod")
    api = one(objs, "Deployment", "kervan-api")
    api["spec"]["template"]["spec"]["containers"][0]["readinessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        _validate(api)
    scaled = one(objs, "ScaledObject")
    scaled["spec"]["minReplicas"] = scaled["spec"].pop("minReplicaCount")
    with pytest.raises(jsonschema.ValidationError, match="minReplicas"):
        _validate(scaled)
    monitor = one(objs, "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["port"] = 8000
    with pytest.raises(jsonschema.ValidationError):
        _validate(monitor)
    rule = one(objs, "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["for"] = "ten minutes"
    with pytest.raises(jsonschema.ValidationError):
        _validate(rule)
    auth = one(objs, "TriggerAuthentication")
    del auth["spec"]["secretTargetRef"][0]["key"]
    with pytest.raises(jsonschema.ValidationError):
        _validate(auth)


def test_each_crd_schema_names_its_source() -> None:
    files = sorted(SCHEMAS.glob("*.yaml"))
    kinds = set()
    for path in files:
        doc = yaml.safe_load(path.read_text())
        source = doc["source"]
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repository"]), path
        assert source["path"].endswith(".yaml"), path
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), path
        assert doc["openAPIV3Schema"]["type"] == "object", path
        kinds.add(doc["kind"])
    assert kinds == {"ScaledObject", "TriggerAuthentication", "ServiceMonitor", "PrometheusRule"}


def test_no_flat_manifests_left_beside_the_kustomizations() -> None:
    assert sorted(p.name for p in K8S.glob("*.yaml")) == []
