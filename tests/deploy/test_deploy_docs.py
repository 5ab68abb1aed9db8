"""The operator docs stay true: the Grafana dashboard queries only metrics that the docs list and
the mesh registers, and every relative link in docs/ and README.md resolves."""

from __future__ import annotations

import json
import re

from deploy_helpers import DEPLOY, ROOT, run
from prometheus_client import CollectorRegistry

from modelmesh.mesh.metrics import MeshMetrics

METRIC = re.compile(r"\bmodelmesh_[a-z_]+\b")
HISTOGRAM_SUFFIX = re.compile(r"_(bucket|sum|count)$")


def documented_runtime_metrics() -> set[str]:
    doc = (ROOT / "docs" / "monitoring.md").read_text()
    section = doc.split("## Runtime-pod metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(modelmesh_[a-z_]+)` \|", section, re.MULTILINE))


def mesh_metric_families() -> set[str]:
    registry = CollectorRegistry()
    MeshMetrics(registry)
    return {family.name for family in registry.collect()}


def test_documented_runtime_metrics_are_the_meshs() -> None:
    assert documented_runtime_metrics() == mesh_metric_families()


def test_dashboard_queries_use_documented_metric_names() -> None:
    dashboard = json.loads((DEPLOY / "monitoring" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 14
    used = {HISTOGRAM_SUFFIX.sub("", m) for e in exprs for m in METRIC.findall(e)}
    documented = documented_runtime_metrics()
    assert used <= documented, sorted(used - documented)
    # The reference dashboards chart inference from the API-request histogram, and load failures
    # from the counter's own name (no _total suffix).
    assert "modelmesh_api_request_milliseconds" in used
    assert any("modelmesh_loadmodel_failure{" in e for e in exprs)
    assert {p["id"] for p in dashboard["panels"]} == set(range(1, len(dashboard["panels"]) + 1))


def test_relative_links_in_docs_resolve() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    broken = []
    for path in files:
        for target in link.findall(path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_install_doc_lists_every_install_sh_option() -> None:
    help_text = run(["bash", DEPLOY / "install.sh", "--help"]).stdout
    options = set(re.findall(r"^\s+(?:-\w+, )?(--[a-z-]+)", help_text, re.MULTILINE))
    assert {"--namespace", "--quickstart", "--namespace-scope-mode", "--user-namespaces", "--delete",
            "--enable-self-signed-ca", "--no-wait"} <= options
    doc = (ROOT / "docs" / "install.md").read_text()
    assert {o for o in options if f"`{o}" not in doc and f" {o}" not in doc} == set()
