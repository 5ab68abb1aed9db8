"""PNG plots of the suite's series (matplotlib, Agg: no display needed).

Each function draws one kind of plot from the `series` a scenario recorded and returns the
path it wrote. The series shapes are the contract between scenarios and plots:

    latency:    {path: {"conc": [..], "p50_ms": [..], "p99_ms": [..]}}
    throughput: {path: {"conc": [..], "rps": [..]}}   ("load generator ceiling" drawn dashed)
    over_time:  {"t_s": [..], "hit_ratio": [..], "miss_ms": [..], "runtime_load_ms": x}
    memory:     {"registered": [..], "rss_mb": [..]}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def latency(series: dict[str, dict[str, list[float]]], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (name, s) in enumerate(series.items()):
        color = f"C{i}"
        ax.plot(s["conc"], s["p50_ms"], "o-", color=color, label=f"{name} p50")
        ax.plot(s["conc"], s["p99_ms"], "s--", color=color, alpha=0.7, label=f"{name} p99")
    concs = sorted({c for s in series.values() for c in s["conc"]})
    ax.set_xscale("log", base=2)
    ax.set_xticks(concs, [str(c) for c in concs])
    ax.minorticks_off()
    ax.set_yscale("log")
    ax.set_xlabel("concurrency (closed loop)")
    ax.set_ylabel("latency, ms")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def throughput(series: dict[str, dict[str, list[float]]], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    names = list(series)
    concs = sorted({c for s in series.values() for c in s["conc"]})
    width = 0.8 / max(1, len([n for n in names if "ceiling" not in n]))
    bars = [n for n in names if "ceiling" not in n]
    for i, name in enumerate(bars):
        s = series[name]
        xs = [concs.index(c) + i * width for c in s["conc"]]
        ax.bar(xs, s["rps"], width=width, label=name, color=f"C{i}")
    for name in names:
        if "ceiling" in name:
            s = series[name]
            ax.plot([concs.index(c) + 0.4 - width / 2 for c in s["conc"]], s["rps"], "k--", marker="x", label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(concs))], [str(c) for c in concs])
    ax.set_xlabel("concurrency (closed loop)")
    ax.set_ylabel("requests/s")
    ax.set_title(title)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def over_time(series: dict[str, Any], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(series["t_s"], series["hit_ratio"], "C0-", label="hit ratio (sliding window)")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("seconds into the traffic")
    ax.set_ylabel("hit ratio", color="C0")
    ax2 = ax.twinx()
    ax2.plot(series["t_s"], series["miss_ms"], "C3.-", label="mean miss latency (mesh)")
    if series.get("runtime_load_ms"):
        ax2.axhline(series["runtime_load_ms"], color="C3", ls=":", label="runtime's own load + infer (floor)")
    ax2.set_ylabel("miss latency, ms", color="C3")
    ax2.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="lower right")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


def memory(series: dict[str, list[float]], title: str, path: Path) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(series["registered"], series["rss_mb"], "o-")
    ax.set_xlabel("registered models")
    ax.set_ylabel("mesh RSS, MB")
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


KINDS = {"latency": latency, "throughput": throughput, "over_time": over_time, "memory": memory}


def render(scenario: str, plots: dict[str, dict[str, Any]], out_dir: Path) -> list[Path]:
    """`plots`: {plot name: {"kind": one of KINDS, "title": str, "series": {...}}}."""
    written = []
    for name, spec in plots.items():
        written.append(KINDS[spec["kind"]](spec["series"], spec["title"], out_dir / f"{scenario}-{name}.png"))
    return written
