"""`modelmesh local status`: the running mode writes `<state>/status.json` whenever something
changes; `status` reads it (the store itself is locked by the running process) and prints
models, runtimes and file errors as tables, with the states and reasons of the CR status."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


def write_snapshot(state_dir: Path, snapshot: dict[str, Any], previous: str | None) -> str:
    """Write when the content changed; returns the content written (or kept)."""
    text = json.dumps(snapshot, indent=1, sort_keys=True)
    if text != previous:
        tmp = state_dir / (STATUS_FILE + ".tmp")
        tmp.write_text(text)
        tmp.replace(state_dir / STATUS_FILE)
    return text


def read_snapshot(state_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((state_dir / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers).rstrip(), *(fmt.format(*r).rstrip() for r in rows)]


def render(snapshot: dict[str, Any] | None, state_dir: Path) -> tuple[str, int]:
    """The status text and the exit code (0 running, 3 not running: like `systemctl status`)."""
    if snapshot is None:
        return f"modelmesh local: no status in {state_dir} (not started with this state dir)", 3
    running = snapshot.get("state") != "stopped" and _alive(int(snapshot.get("pid", 0)))
    state = ("ready" if snapshot.get("ready") else "starting") if running else "not running (last known state below)"
    ep = snapshot.get("endpoints") or {}
    lines = [
        f"modelmesh local: {state}; pid {snapshot.get('pid')}; config dir {snapshot.get('config_dir')}",
        f"  gRPC {ep.get('grpc', '?')}   REST {ep.get('rest', '?')}   metrics {ep.get('metrics', '?')}",
        "",
    ]
    runtimes = snapshot.get("runtimes") or []
    lines += _table(["RUNTIME", "INSTANCE", "STATE", "MESH", "RESTARTS", "PIDS"], [
        [r["runtime"], r["instance"], r["state"], r["mesh"], str(r["restarts"]),
         " ".join(str(p) for p in r.get("pids") or [])] for r in runtimes])
    lines.append("")
    models = snapshot.get("models") or []
    lines += _table(["MODEL", "KIND", "READY", "ACTIVE", "TARGET", "TRANSITION", "COPIES", "REASON", "MESSAGE"], [
        [m["name"] + ("" if m.get("declared", True) else " (state dir only)"), m.get("kind") or "-",
         "True" if m["available"] else "False", m["activeModelState"] or "-", m["targetModelState"] or "-",
         m["transitionStatus"], str(m["totalCopies"]),
         (m.get("lastFailureInfo") or {}).get("reason", ""), (m.get("lastFailureInfo") or {}).get("message", "")]
        for m in models])
    errors = snapshot.get("file_errors") or {}
    if errors:
        lines += ["", "FILE ERRORS"]
        for path, problems in sorted(errors.items()):
            lines += [f"  {path}: {p}" for p in problems]
    notes = snapshot.get("file_notes") or {}
    if notes:
        lines += ["", "NOTES"]
        for path, items in sorted(notes.items()):
            lines += [f"  {path}: {n}" for n in items]
    return "\n".join(lines), 0 if running else 3
