"""The perf suite's plumbing (records, the skipped record, plots, the summary, the traffic
model), cheaply: no scenario is measured here and nothing is timed."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from perf.suite import cli, plots, report
from perf.suite.density import ZipfTraffic, _bucket_quantile, _series
from perf.suite.record import Record, validate, write

ROOT = Path(__file__).resolve().parents[2]


def sample_record() -> dict:
    rec = Record("routing", workload={"concurrency": [1, 8]})
    rec.compare("mesh_rps_c8", 1500.0, "direct_rps_c8", 3000.0)
    rec.figure("hit_ratio", 0.75)
    rec.series = {"latency": {"kind": "latency", "title": "t", "series": {
        "mesh": {"conc": [1, 8], "p50_ms": [1.0, 4.0], "p99_ms": [2.0, 9.0]}}}}
    return rec.to_json({"cpus": 2}, {"modelmesh": "0.1.0"}, 1.23)


def test_record_has_the_schema_and_ratios_name_their_floor(tmp_path):
    doc = sample_record()
    assert validate(doc) == []
    assert set(doc) >= {"scenario", "workload", "machine", "figures", "floors", "versions"}
    assert doc["ratios"]["mesh_rps_c8"] == {"floor": "direct_rps_c8", "ratio": 0.5}
    path = write(tmp_path, doc)
    assert path.name == "routing.json" and json.loads(path.read_text()) == doc


def test_invalid_records_are_refused(tmp_path):
    doc = sample_record()
    bad = {**doc, "figures": {**doc["figures"], "x": "fast"}}
    assert validate(bad) == ["figures.x: not a finite number ('fast')"]
    orphan = {**doc, "floors": {}}
    assert any("not in floors" in p for p in validate(orphan))
    assert validate({"scenario": "s", "figures": {}}) == [
        "workload: missing", "machine: missing", "floors: missing", "versions: missing"]
    with pytest.raises(ValueError, match="invalid"):
        write(tmp_path, bad)
    with pytest.raises(ValueError, match="finite"):
        Record("x").figure("nan", float("nan"))


def test_gpu_scenario_without_a_gpu_writes_the_skipped_record(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi to be found
    doc = cli.run_one("gpu-triton", tmp_path, quick=True, skew=1.0, workers=None)
    assert doc == {"scenario": "gpu-triton", "skipped": "no GPU on this machine (nvidia-smi not found)"}
    assert json.loads((tmp_path / "gpu-triton.json").read_text()) == doc
    assert validate(doc) == []


def test_every_plot_kind_renders_a_png(tmp_path):
    specs = {
        "latency": {"kind": "latency", "title": "l", "series": {
            "direct": {"conc": [1, 8, 32], "p50_ms": [0.5, 2, 8], "p99_ms": [1, 4, 16]}}},
        "throughput": {"kind": "throughput", "title": "t", "series": {
            "direct": {"conc": [1, 8], "rps": [1000, 3000]}, "mesh": {"conc": [1, 8], "rps": [600, 1400]},
            "load generator ceiling": {"conc": [1, 8], "rps": [2000, 6000]}}},
        "over_time": {"kind": "over_time", "title": "o", "series": {
            "t_s": [1, 2, 3], "hit_ratio": [0.1, 0.5, 0.8], "miss_ms": [300, 250, 200], "runtime_load_ms": 8}},
        "memory": {"kind": "memory", "title": "m", "series": {"registered": [0, 1000, 10000],
                                                               "rss_mb": [60, 62, 69]}},
    }
    paths = plots.render("demo", specs, tmp_path)
    assert sorted(p.name for p in paths) == ["demo-latency.png", "demo-memory.png", "demo-over_time.png",
                                              "demo-throughput.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000


def test_summary_shows_each_figure_next_to_its_floor():
    docs = [sample_record(), {"scenario": "gpu-triton", "skipped": "no GPU"}]
    table = report.text_table(docs)
    line = next(line for line in table.splitlines() if "mesh_rps_c8" in line)
    assert line.split() == ["routing", "mesh_rps_c8", "1,500", "direct_rps_c8", "3,000", "0.5x"]
    assert "no GPU" in table
    md = report.markdown_table(docs, only={"hit_ratio"})
    assert "hit_ratio" in md and "mesh_rps_c8" not in md and "skipped" in md


def test_zipf_traffic_follows_its_skew():
    ids = [f"m{i}" for i in range(1000)]
    flat_traffic = ZipfTraffic(ids, 0.0, random.Random(3))
    flat = Counter(flat_traffic.next() for _ in range(20000))
    skewed_traffic = ZipfTraffic(ids, 1.2, random.Random(3))
    skewed = Counter(skewed_traffic.next() for _ in range(20000))
    top = skewed_traffic.ids[0]  # rank 1
    assert skewed[top] > 20000 * 0.15  # p(1) = 1/H(1000, 1.2) ~ 0.2
    assert max(flat.values()) < 60  # uniform: ~20 each
    assert len(skewed) < len(flat)


def test_miss_histogram_quantiles_and_windows():
    snap = {"miss_le_10.0": 50, "miss_le_100.0": 90, "miss_le_+Inf": 100}
    assert _bucket_quantile(snap, 0.5) == pytest.approx(10.0)
    assert _bucket_quantile(snap, 0.7) == pytest.approx(10 + 90 * (20 / 40))
    assert _bucket_quantile({}, 0.5) is None
    m = "modelmesh_cache_miss_milliseconds_count"
    s = "modelmesh_cache_miss_milliseconds_sum"
    samples = [(0.0, 0, {m: 0, s: 0}), (1.0, 10, {m: 10, s: 1000}), (2.0, 30, {m: 10, s: 1000})]
    series = _series(samples, window_s=0.5, min_requests=0)
    assert series["hit_ratio"] == [0.0, 1.0]
    assert series["miss_ms"] == [100.0, 100.0]  # no miss in the second window: the last value carries
    assert _series(samples, window_s=5)["hit_ratio"] == [0.0, pytest.approx(2 / 3)]
    assert _series(samples, window_s=0.5, min_requests=25)["hit_ratio"] == [0.0, pytest.approx(2 / 3)]


def test_cli_runs_a_scenario_and_writes_records_plots_and_summary(tmp_path):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if not (Path(p) / "nvidia-smi").exists())
    out = subprocess.run([sys.executable, "-m", "perf", "run", "gpu-triton", "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "gpu-triton: skipped: no GPU" in out.stdout
    assert json.loads((tmp_path / "gpu-triton.json").read_text())["skipped"]
    assert "gpu-triton" in (tmp_path / "summary.md").read_text()
    bad = subprocess.run([sys.executable, "-m", "perf", "run", "nope"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "unknown scenario" in bad.stderr
