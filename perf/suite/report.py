"""The summary table: every figure, and where it has one, its floor from the same run and
figure/floor."""

from __future__ import annotations

from typing import Any


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}" if value else "0"


def rows(docs: list[dict[str, Any]]) -> list[tuple[str, str, str, str, str, str]]:
    out = []
    for doc in docs:
        name = doc["scenario"]
        if "skipped" in doc or "error" in doc:
            out.append((name, "skipped" if "skipped" in doc else "error", doc.get("skipped") or doc.get("error"),
                        "", "", ""))
            continue
        for fig, value in doc["figures"].items():
            ratio = doc.get("ratios", {}).get(fig)
            if ratio:
                floor = ratio["floor"]
                out.append((name, fig, _fmt(value), floor, _fmt(doc["floors"][floor]), _fmt(ratio["ratio"]) + "x"))
            else:
                out.append((name, fig, _fmt(value), "", "", ""))
    return out


def text_table(docs: list[dict[str, Any]]) -> str:
    header = ("scenario", "figure", "value", "floor (same run)", "floor value", "figure/floor")
    body = rows(docs)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    widths[2] = min(widths[2], 60)
    lines = ["  ".join(c.ljust(w) if i != 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *body]]
    return "\n".join(lines)


def markdown_table(docs: list[dict[str, Any]], only: set[str] | None = None) -> str:
    """`only`: figure names to include (all when None)."""
    header = "| scenario | figure | value | floor (same run) | floor value | figure/floor |\n|---|---|---:|---|---:|---:|"
    lines = [header]
    for r in rows(docs):
        if only is None or r[1] in only or r[1] in ("skipped", "error"):
            lines.append("| " + " | ".join(c or "" for c in r) + " |")
    return "\n".join(lines)
