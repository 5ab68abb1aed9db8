"""`python -m perf run [SCENARIO...] [--quick] [--out DIR]`: run scenarios, write
DIR/<scenario>.json, render DIR/<scenario>-*.png, print and write the summary table.

Each scenario runs in its own process (a crash, a hung server or grpc state of one scenario
cannot spoil the next), with a wall-clock limit; the parent renders plots and the table.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

from perf.suite import record as records
from perf.suite import report

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = {"routing": "perf.suite.routing", "density": "perf.suite.density", "scale": "perf.suite.scale",
             "rest-proxy": "perf.suite.rest_proxy", "gpu-triton": "perf.suite.gpu_triton"}
LIMIT_S = {"quick": 600, "full": 3600}


def run_one(name: str, out_dir: Path, quick: bool, skew: float, workers: int | None) -> dict:
    """In the scenario's own process: measure, write the record, return it."""
    machine = records.machine()
    t0 = time.monotonic()
    try:
        result = importlib.import_module(SCENARIOS[name]).run(quick=quick, skew=skew, workers=workers)
    except BaseException as e:  # noqa: BLE001 - one failed scenario becomes an error record, the suite goes on
        # (BaseException: the harness reports a missing component with pytest.fail, not an Exception)
        if isinstance(e, (SystemExit, KeyboardInterrupt)):
            raise
        traceback.print_exc()
        doc = records.failed(name, f"{type(e).__name__}: {e}"[:2000])
    else:
        if isinstance(result, dict):  # skipped
            print(f"{name}: skipped: {result['skipped']}", flush=True)
            doc = result
        else:
            machine["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
            doc = result.to_json(machine, records.versions(ROOT), time.monotonic() - t0)
            doc["workload"]["mode"] = "quick" if quick else "full"
    records.write(out_dir, doc)
    return doc


def _child(name: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", "perf.suite.cli", "--one", name, "--out", str(args.out), "--skew", str(args.skew)]
    if args.quick:
        cmd.append("--quick")
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    limit = args.limit or LIMIT_S["quick" if args.quick else "full"]
    path = args.out / f"{name}.json"
    path.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        code = proc.wait(limit)
    except subprocess.TimeoutExpired:
        code = None
        # SIGTERM first: the scenario's finally blocks stop the servers it started.
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if path.exists():
        return json.loads(path.read_text())
    why = f"ran past its {limit} s limit" if code is None else f"exited with {code} and wrote no record"
    doc = records.failed(name, why)
    records.write(args.out, doc)
    return doc


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(f"stopped by signal {signum} (over the time limit)")


def render(docs: list[dict], out_dir: Path) -> list[Path]:
    from perf.suite import plots

    written = []
    for doc in docs:
        if doc.get("series"):
            written += plots.render(doc["scenario"], doc["series"], out_dir)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perf", description=__doc__.split("\n")[0])
    ap.add_argument("command", nargs="?", choices=["run", "list"], default="run")
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(SCENARIOS)}")
    ap.add_argument("--quick", action="store_true", help="every scenario at a size that ends in minutes")
    ap.add_argument("--out", type=Path, default=ROOT / "perf" / "results", help="where records and plots go")
    ap.add_argument("--skew", type=float, default=1.0, help="Zipf exponent of the density traffic")
    ap.add_argument("--workers", type=int, default=None, help="REST_PROXY_WORKERS of the N-worker proxy")
    ap.add_argument("--limit", type=int, default=None, help="seconds per scenario before it is stopped")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one:
        # Over its time limit the parent sends SIGTERM: unwind, so that finally blocks stop servers.
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
        doc = run_one(args.one, args.out, args.quick, args.skew, args.workers)
        return 1 if "error" in doc else 0
    if args.command == "list":
        for name, module in SCENARIOS.items():
            print(f"{name:12} {(importlib.import_module(module).__doc__ or '').splitlines()[0]}")
        return 0
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    names = args.scenarios or list(SCENARIOS)
    t0 = time.monotonic()
    docs = []
    for name in names:
        print(f"=== {name} ({'quick' if args.quick else 'full'}) ===", flush=True)
        t = time.monotonic()
        docs.append(_child(name, args))
        print(f"=== {name}: {time.monotonic() - t:.0f} s ===", flush=True)
    plots = render(docs, args.out)
    table = report.text_table(docs)
    (args.out / "summary.txt").write_text(table + "\n")
    (args.out / "summary.md").write_text(report.markdown_table(docs) + "\n")
    print("\n" + table)
    print(f"\n{len(docs)} scenarios in {time.monotonic() - t0:.0f} s; records, {len(plots)} plots and the summary "
          f"in {args.out}")
    return 1 if any("error" in d for d in docs) else 0


if __name__ == "__main__":
    sys.exit(main())
