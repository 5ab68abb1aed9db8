"""One JSON record per scenario, and what describes the machine and versions it ran on."""

from __future__ import annotations

import importlib.metadata
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED = ("scenario", "workload", "machine", "figures", "floors", "versions")


@dataclass
class Record:
    """`figures` and `floors` are {name: number}; `ratios` names, per machine-dependent figure,
    the floor it is compared with and figure/floor; `series` holds what the plots draw."""

    scenario: str
    workload: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)
    floors: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, dict[str, Any]] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def figure(self, name: str, value: float) -> None:
        self.figures[name] = _number(value)

    def floor(self, name: str, value: float) -> None:
        self.floors[name] = _number(value)

    def compare(self, name: str, value: float, floor_name: str, floor_value: float) -> None:
        """A machine-dependent figure next to its floor from the same run, as figure/floor."""
        self.figure(name, value)
        self.floor(floor_name, floor_value)
        ratio = value / floor_value if floor_value else None
        self.ratios[name] = {"floor": floor_name, "ratio": _number(ratio) if ratio is not None else None}

    def to_json(self, machine: dict[str, Any], versions: dict[str, str], seconds: float) -> dict[str, Any]:
        return {"scenario": self.scenario, "workload": self.workload, "machine": machine,
                "figures": self.figures, "floors": self.floors, "ratios": self.ratios,
                "versions": versions, "seconds": round(seconds, 1), "notes": self.notes, "series": self.series}


def _number(value: float) -> float:
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"figure is not a finite number: {value}")
    return round(value, 4)


def skipped(scenario: str, why: str) -> dict[str, str]:
    return {"scenario": scenario, "skipped": why}


def failed(scenario: str, error: str) -> dict[str, str]:
    return {"scenario": scenario, "error": error}


def validate(doc: dict[str, Any]) -> list[str]:
    """Schema problems of one record ([] when valid): a full record, a skipped or a failed one."""
    if not isinstance(doc.get("scenario"), str) or not doc["scenario"]:
        return ["scenario: missing"]
    if "skipped" in doc or "error" in doc:
        key = "skipped" if "skipped" in doc else "error"
        extra = set(doc) - {"scenario", key}
        problems = [] if isinstance(doc[key], str) and doc[key] else [f"{key}: must say why"]
        return problems + ([f"unexpected keys {sorted(extra)}"] if extra else [])
    problems = [f"{k}: missing" for k in REQUIRED if k not in doc]
    for key in ("figures", "floors"):
        values = doc.get(key, {})
        if not isinstance(values, dict):
            problems.append(f"{key}: not an object")
            continue
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append(f"{key}.{name}: not a finite number ({value!r})")
    for name, ratio in doc.get("ratios", {}).items():
        if name not in doc.get("figures", {}):
            problems.append(f"ratios.{name}: no such figure")
        elif ratio.get("floor") not in doc.get("floors", {}):
            problems.append(f"ratios.{name}: floor {ratio.get('floor')!r} not in floors")
    return problems


def write(out_dir: Path, doc: dict[str, Any]) -> Path:
    problems = validate(doc)
    if problems:
        raise ValueError(f"record of {doc.get('scenario')} is invalid: {'; '.join(problems)}")
    path = out_dir / f"{doc['scenario']}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gb = 0.0
    try:
        with open("/proc/meminfo") as f:
            mem_gb = int(next(line for line in f if line.startswith("MemTotal")).split()[1]) / 1024**2
    except (OSError, StopIteration):
        pass
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gb": round(mem_gb, 1),
            "platform": platform.platform(), "python": sys.version.split()[0],
            "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def versions(root: Path) -> dict[str, str]:
    out = {}
    for dist in ("modelmesh", "grpcio", "aiohttp", "protobuf", "aetcd", "uvloop", "matplotlib"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False)
        if head.returncode == 0:
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                   capture_output=True, text=True, timeout=10, check=False).stdout.strip()
            out["git"] = head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out
