"""Monitoring (k8s/monitoring, in the prod overlay): every metric the alerts, the dashboard and
the autoscalers read is one kervan exports today; the alerts are valid PromQL and fire when they
should (promtool); the ServiceMonitor scrapes the real /metrics of the API Service."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.k8s.manifests import (
    K8S,
    Obj,
    exported_metric_names,
    metric_names,
    of_kind,
    one,
    render,
    walk_exprs,
)
from tests.k8s.test_workloads import _app_routes, get_route_exists
from tests.services import require_tool

DASHBOARD = K8S / "monitoring" / "kervan-dashboard.json"
ALERT_TESTS = Path(__file__).with_name("alerts_test.yaml")


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def rule_groups(objs: list[Obj]) -> list[Obj]:
    return [g for rule in of_kind(objs, "PrometheusRule") for g in rule["spec"]["groups"]]


def alert_exprs(objs: list[Obj]) -> list[str]:
    return [r["expr"] for g in rule_groups(objs) for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    return list(walk_exprs(dashboard()))


def autoscaler_metrics(objs: list[Obj]) -> set[str]:
    names = set()
    for hpa in of_kind(objs, "HorizontalPodAutoscaler"):
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] in ("Pods", "Object", "External"):
                names.add(metric[metric["type"].lower()]["metric"]["name"])
    for scaled in of_kind(objs, "ScaledObject"):
        for trigger in scaled["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                names |= metric_names(trigger["metadata"]["query"])
    return names


def promtool() -> str:
    return require_tool("promtool", "it checks the alert rules; apt-get install prometheus")


def run_promtool(*args: str) -> None:
    done = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"


# ---------------------------------------------------------------- metric names


def test_every_metric_used_is_one_kervan_exports() -> None:
    objs = render("prod")
    used: dict[str, set[str]] = {
        "alerts": set().union(*(metric_names(e) for e in alert_exprs(objs))),
        "dashboard": set().union(*(metric_names(e) for e in dashboard_exprs())),
        "autoscalers": autoscaler_metrics(objs),
    }
    assert all(used.values()), used
    exported = exported_metric_names()
    unknown = {where: sorted(names - exported) for where, names in used.items() if names - exported}
    assert not unknown, f"metrics kervan does not export: {unknown}"


def test_the_metric_check_can_fail() -> None:
    exported = exported_metric_names()
    # Families are exported with their type's suffixes, and only with them.
    assert {"kervan_http_requests_total", "kervan_http_request_duration_seconds_bucket"} <= exported
    assert "kervan_http_requests" not in exported
    assert "kervan_queue_oldest_job_age_seconds" in exported
    assert "kervan_queue_jobs_enqueued_created" not in exported  # *_created is turned off
    used = metric_names('sum(rate(kervan_nope_total{route!~"/kervan_x"}[5m])) / kervan_up')
    assert used == {"kervan_nope_total", "kervan_up"}
    assert used - exported == used


def test_alerts_cover_what_operators_need() -> None:
    names = {r.get("alert") for g in rule_groups(render("prod")) for r in g["rules"]}
    assert names >= {
        "KervanHighErrorRatio",
        "KervanHighLatencyP99",
        "KervanQueueJobsWaiting",
        "KervanDeadLetters",
    }
    for group in rule_groups(render("prod")):
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


# ---------------------------------------------------------------- promtool


def test_alert_rules_pass_promtool_check(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups(render("prod"))}))
    run_promtool("check", "rules", str(rules))


def test_alerts_fire_when_they_should(tmp_path: Path) -> None:
    groups = rule_groups(render("prod"))
    for group in groups:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}))
    tests = tmp_path / "alerts_test.yaml"
    tests.write_text(ALERT_TESTS.read_text().replace("RULES_FILE", str(rules)))
    run_promtool("test", "rules", str(tests))


def test_alert_unit_tests_exercise_every_alert() -> None:
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text()))
    names = {r["alert"] for g in rule_groups(render("prod")) for r in g["rules"] if "alert" in r}
    assert tested == names


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # Grafana's variables replaced by values; each query checked as a recording rule.
    exprs = [
        e.replace("$__rate_interval", "5m").replace("$namespace", "kervan")
        for e in dashboard_exprs()
        if not e.startswith("label_values(")
    ]
    rules = [{"record": f"kervan:dashboard_query_{i}", "expr": e} for i, e in enumerate(exprs)]
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool("check", "rules", str(path))


# ---------------------------------------------------------------- dashboard and scraping


def test_dashboard_is_a_grafana_dashboard_on_a_chosen_datasource() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
        assert all('namespace="$namespace"' in t["expr"] for t in panel["targets"]), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24


def test_dashboard_ships_as_a_configmap_for_the_grafana_sidecar() -> None:
    config = one(render("prod"), "ConfigMap", "kervan-grafana-dashboard")
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["kervan-dashboard.json"]) == dashboard()


def test_service_monitor_scrapes_the_api_metrics_route(tmp_path: Path) -> None:
    objs = render("prod")
    monitor = one(objs, "ServiceMonitor", "kervan-api")
    service = one(objs, "Service", "kervan-api")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(service["metadata"]["labels"].get(k) == v for k, v in selector.items())
    routes = _app_routes(tmp_path)
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert get_route_exists(routes, endpoint["path"])
        assert endpoint["authorization"]["type"] == "Bearer"


@pytest.mark.parametrize("kind", ["ServiceMonitor", "PrometheusRule"])
def test_dev_has_no_prometheus_operator_resources(kind: str) -> None:
    assert of_kind(render("dev"), kind) == []
