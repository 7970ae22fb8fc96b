"""The Grafana dashboard (deploy/grafana/exgate.json) and the Prometheus alert rules
(deploy/prometheus/alerts.yml) ask only for metrics a real gateway exposes, and are well formed,
the "Stream health" row's ``exgate_stream_*`` families included."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ServerThread

ROOT = Path(__file__).resolve().parents[1]
DASHBOARD = ROOT / "deploy/grafana/exgate.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
STREAM_ROW = "Stream health"

_SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"),
             "gauge": ("",), "summary": ("", "_sum", "_count", "_created"), "info": ("_info",)}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
             "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers not called as functions,
    outside strings, label matchers, ranges and grouping clauses, and not keywords.

    Raises:
        AssertionError: a metric name is used as a function (``exgate_x(...)``).
    """
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # string literals
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", text)  # Grafana variables ($__rate_interval, ${x})
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # label matchers, ranges and subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        name, called = match.groups()
        if called:
            assert not name.startswith("exgate_"), f"metric name used as a function: {name} in {expr!r}"
            continue
        if name.lower() not in _KEYWORDS:
            names.add(name)
    return names


def test_metric_names_are_found_and_functions_are_not():
    expr = ('histogram_quantile(0.95, sum by (le, route) (rate(exgate_request_duration_seconds_bucket'
            '{route!="unmatched", x=~"$exchange"}[$__rate_interval]))) / ignoring(tier) group_left '
            'sum(exgate_budget_waiting) > bool 2e3 or vector(0) unless exgate_venue_status offset 5m')
    assert metric_names(expr) == {"exgate_request_duration_seconds_bucket", "exgate_budget_waiting",
                                  "exgate_venue_status"}
    assert metric_names('max_over_time(exgate_budget_used_ratio[1m:15s]) > 0.9') == {"exgate_budget_used_ratio"}
    with pytest.raises(AssertionError, match="used as a function"):
        metric_names("exgate_budget_waiting(up)")


@pytest.fixture(scope="module")
def exposed(gateway: ServerThread) -> set[str]:
    """Every sample name a real gateway's ``/metrics`` can show (after one read, so labelled
    series exist), derived from each family's type: counters ``_total``, histograms
    ``_bucket``/``_sum``/``_count``."""
    assert httpx.get(f"{gateway.url}/v1/bybit/prices", timeout=30).status_code == 200
    text = httpx.get(f"{gateway.url}/metrics", timeout=30).text
    return {family.name + suffix for family in text_string_to_metric_families(text)
            for suffix in _SUFFIXES[family.type]}


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels_with_row(dash: dict) -> Iterator[tuple[str | None, dict]]:
    """``(row title or None, panel)`` for every non-row panel, open or collapsed rows."""
    row = None
    for panel in dash["panels"]:
        if panel.get("type") == "row":
            row = panel["title"]
            for child in panel.get("panels", []):
                yield row, child
        else:
            yield row, panel


def test_dashboard_is_valid_json_with_unique_ids_and_a_target_in_every_panel():
    dash = dashboard()
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["exchange"]["definition"].startswith("label_values(")
    ids = [p["id"] for p in dash["panels"]] + [c["id"] for p in dash["panels"] for c in p.get("panels", [])]
    assert len(ids) == len(set(ids))
    for _, panel in panels_with_row(dash):
        assert panel.get("targets") and all(t.get("expr") for t in panel["targets"]), panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]


def test_dashboard_asks_only_for_exposed_metrics(exposed: set[str]):
    dash = dashboard()
    stream_panels = 0
    for row, panel in panels_with_row(dash):
        names = set().union(*(metric_names(t["expr"]) for t in panel["targets"]))
        if any(n.startswith("exgate_stream_") for n in names):
            stream_panels += 1
            assert row == STREAM_ROW, f"{panel['title']}: exgate_stream_* outside the {STREAM_ROW!r} row"
        assert names <= exposed, f"{panel['title']}: {sorted(names - exposed)} not exposed"
    assert stream_panels > 0
    query = dash["templating"]["list"][1]["definition"]
    metric = re.fullmatch(r"label_values\((\w+),\s*exchange\)", query).group(1)
    assert metric in exposed


def alert_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_alerts_ask_only_for_exposed_metrics(exposed: set[str]):
    for rule in alert_rules():
        names = metric_names(rule["expr"])
        assert names and names <= exposed, f"{rule['alert']}: {sorted(names - exposed)} not exposed"


def test_alert_rules_pass_promtool_or_the_schema_check():
    promtool = shutil.which("promtool")
    if promtool is not None:
        done = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        return
    warnings.warn("promtool not on PATH: alerts.yml got the YAML schema check only (install Debian's prometheus)")
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    assert groups
    for group in groups:
        assert isinstance(group["name"], str) and group["rules"]
        for rule in group["rules"]:
            assert isinstance(rule["alert"], str) and isinstance(rule["expr"], str), rule
            assert re.fullmatch(r"\d+[smhdwy]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_dashboard_queries_parse_as_promql(tmp_path: Path):
    """With promtool, every dashboard query (Grafana variables filled in) is checked as the
    expression of a recording rule; without it, this test only warns."""
    promtool = shutil.which("promtool")
    if promtool is None:
        warnings.warn("promtool not on PATH: the dashboard's PromQL was not parsed")
        return
    exprs = [t["expr"] for _, p in panels_with_row(dashboard()) for t in p["targets"]]
    filled = [e.replace("$__rate_interval", "5m").replace("$exchange", ".*") for e in exprs]
    rules = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:query{i}", "expr": e}
                                                         for i, e in enumerate(filled)]}]}
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump(rules))
    done = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
