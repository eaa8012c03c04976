"""Operations artefacts: the Prometheus alert rules (checked and unit-tested with
promtool) and the Grafana dashboard, against the metrics the workers export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
DASHBOARD = ROOT / "deploy" / "grafana" / "keysweep.json"
METRIC = re.compile(r"\bkeysweep_[a-z_]+\b")


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is needed: apt-get install prometheus (.ci/run installs it)"
    return path


def exported() -> set[str]:
    """Every series name the workers can export (counters with _total, histograms
    with _bucket/_sum/_count, and the gauges the exporter reads from Redis)."""
    text = (ROOT / "workers" / "metrics.py").read_text()
    names: set[str] = set()
    for kind, name in re.findall(r'(Counter|Gauge|Histogram|MetricFamily)\(\s*"(keysweep_\w+)"',
                                 text):
        if kind == "Counter":
            names.add(name + "_total")
        elif kind == "Histogram":
            names |= {name + "_bucket", name + "_sum", name + "_count"}
        else:
            names.add(name)
    # CounterMetricFamily names get _total on exposition
    for name in re.findall(r'CounterMetricFamily\(\s*"(keysweep_\w+)"', text):
        names.add(name + "_total")
    return names


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    unit = subprocess.run(
        [promtool(), "test", "rules", str(ROOT / "tests" / "prometheus" / "alerts_test.yaml")],
        capture_output=True,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def test_the_alerts_the_readme_promises_exist() -> None:
    rules = {r["alert"]: r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"]
             for r in g["rules"]}
    assert "keysweep_parked_revocation_age_seconds" in rules["KeysweepParkedRevocationsOld"]
    assert "keysweep_events_missed_total" in rules["KeysweepEventsMissed"]
    assert "keysweep_queue_depth" in rules["KeysweepActQueueGrowing"]
    assert "keysweep_github_budget_remaining" in rules["KeysweepGitHubBudgetLow"]
    assert "keysweep_push_to_revoke_seconds" in rules["KeysweepPushToRevokeSlow"]
    assert "keysweep_events_polled_total" in rules["KeysweepNotPolling"]
    readme = (ROOT / "README.md").read_text()
    for name in rules:
        assert name in readme, f"{name} is not described in the README"


def test_rules_and_dashboard_use_only_metrics_the_workers_export() -> None:
    names = exported()
    used = set(METRIC.findall(RULES.read_text()))
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used |= {m for e in exprs for m in METRIC.findall(e)}
    assert used - names == set(), f"not exported: {sorted(used - names)}"
    # The dashboard shows every family the workers export.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in names}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used}
    assert families - shown == set(), f"not on the dashboard: {sorted(families - shown)}"
    assert dash["uid"] == "keysweep" and len({p["id"] for p in dash["panels"]}) == len(
        dash["panels"]
    )


def test_the_readme_names_every_exported_metric_and_no_other() -> None:
    """README (Operations): the metric names it lists are the ones the workers export,
    and every family the workers export is listed."""
    readme = (ROOT / "README.md").read_text()
    ops = readme[readme.index("## Operations") : readme.index("## Leaks reported to us")]
    listed = set(re.findall(r"`(keysweep_[a-z_]+)(?:\{[^}]*\})?`", ops))
    names = exported()

    def family(n: str) -> str:
        return re.sub(r"_(total|bucket|sum|count)$", "", n)

    assert {m for m in listed if m not in names and m not in {family(n) for n in names}} == set()
    assert {family(n) for n in names} - {family(m) for m in listed} == set()
