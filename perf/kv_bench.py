"""Coordination-store benchmark: our stores against raw aetcd calls, in one run.

    .venv/bin/python perf/kv_bench.py                 # starts a throwaway etcd on 127.0.0.1
    .venv/bin/python perf/kv_bench.py --endpoint http://127.0.0.1:2379 --puts 5000

Measures at concurrency 32 (mesh.md "coordination floor": about 5,000 puts/s and 2,000
get+compare-and-swap/s raw here, a 5,000-key prefix read in about 20 ms):
  puts/s            unconditional puts, one key per op
  get+CAS/s         read the key, then swap on its mod revision (the naive record update)
  view+CAS/s        mod revision from a WatchedPrefix instead of a get (the mesh's way)
  prefix read ms    listing 5,000 keys (median of 5)
Raw and store runs alternate, best of `--rounds` (CPU per op: median), since figures drift
on a shared machine; client CPU per op is the steadier measure of what the store adds.
Work is bounded by op count and by `--max-seconds` per measurement.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aetcd  # noqa: E402

from modelmesh.kv.config import EtcdConnection, parse_endpoints  # noqa: E402
from modelmesh.kv.embedded import EmbeddedStore  # noqa: E402
from modelmesh.kv.etcd import EtcdStore  # noqa: E402
from modelmesh.kv.view import WatchedPrefix  # noqa: E402

CONCURRENCY = 32
VALUE = b'{"type":"sklearn","mPath":"s3://bucket/models/m","instanceIds":{},"lu":1700000000000}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayEtcd:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="kv-bench-etcd-"))
        self.port, peer_port = _free_port(), _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        peer = f"http://127.0.0.1:{peer_port}"
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        self.proc = subprocess.Popen(
            [etcd, "--name", "b", "--data-dir", str(self.dir / "data"), "--listen-client-urls", self.endpoint,
             "--advertise-client-urls", self.endpoint, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", f"b={peer}", "--log-level", "warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("etcd did not become ready")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


# Client CPU per op (µs) of the last `rate` run: steadier than ops/s on a shared machine,
# and the figure that says what the store adds on top of the raw calls.
last_cpu_us: list[float] = [0.0]


async def rate(n: int, op: Callable[[int, int], Awaitable[None]], max_seconds: float) -> float:
    """ops/s of `op(worker, i)` over `n` ops spread across CONCURRENCY workers."""
    per_worker = max(1, n // CONCURRENCY)
    deadline = time.monotonic() + max_seconds
    done = 0

    async def worker(w: int) -> None:
        nonlocal done
        for i in range(per_worker):
            if time.monotonic() > deadline:
                return
            await op(w, i)
            done += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(w) for w in range(CONCURRENCY)))
    last_cpu_us[0] = (time.process_time() - cpu) / max(done, 1) * 1e6
    return done / (time.perf_counter() - start)


async def bench_etcd(endpoint: str, args: argparse.Namespace) -> dict[str, float]:
    host, port = endpoint.removeprefix("http://").rsplit(":", 1)
    raw = aetcd.Client(host=host, port=int(port))
    store = EtcdStore(EtcdConnection(endpoints=parse_endpoints(endpoint, "bench")))
    results: dict[str, list[float]] = {}
    run = 0

    def record(name: str, value: float) -> None:
        results.setdefault(name, []).append(value)
        if name.endswith("/s"):
            results.setdefault(name.replace("/s", " cpu us/op"), []).append(last_cpu_us[0])

    try:
        await raw.connect()
        for _ in range(args.rounds):
            run += 1
            p = f"/bench/{run}/"

            async def raw_put(w: int, i: int) -> None:
                await raw.put(f"{p}raw/{w}/{i}".encode(), VALUE)

            async def store_put(w: int, i: int) -> None:
                await store.put(f"{p}store/{w}/{i}", VALUE)

            record("raw puts/s", await rate(args.puts, raw_put, args.max_seconds))
            record("store puts/s", await rate(args.puts, store_put, args.max_seconds))

            # get + CAS on one record per worker (no conflicts: this is the cost, not contention)
            async def raw_get_cas(w: int, i: int) -> None:
                key = f"{p}raw-rec/{w}".encode()
                got = await raw.get(key)
                rev = got.mod_revision if got else 0
                ok, _ = await raw.transaction(
                    compare=[raw.transactions.mod(key) == rev],
                    success=[raw.transactions.put(key, VALUE)],
                    failure=[],
                )
                assert ok

            async def store_get_cas(w: int, i: int) -> None:
                key = f"{p}store-rec/{w}"
                got = await store.get(key)
                ok, _ = await store.compare_and_swap(key, got.mod_revision if got else 0, VALUE)
                assert ok

            record("raw get+CAS/s", await rate(args.cas, raw_get_cas, args.max_seconds))
            record("store get+CAS/s", await rate(args.cas, store_get_cas, args.max_seconds))

            # The mesh's update path: the CAS token comes from the watched view.
            view = WatchedPrefix(store, f"{p}view-rec/")
            await view.start()
            await view.synced(10)
            tokens: dict[int, int] = {}

            async def view_cas(w: int, i: int) -> None:
                entry = view.entry(str(w))
                rev = max(tokens.get(w, 0), entry.mod_revision if entry else 0)
                ok, kv = await store.compare_and_swap(f"{p}view-rec/{w}", rev, VALUE)
                assert ok, "view CAS conflict"
                tokens[w] = kv.mod_revision

            record("store view+CAS/s", await rate(args.cas, view_cas, args.max_seconds))
            await view.close()

        # A 5,000-key prefix, read both ways.
        pfx = "/bench/prefix/"
        sem = asyncio.Semaphore(CONCURRENCY)

        async def fill(i: int) -> None:
            async with sem:
                await store.put(f"{pfx}{i:05d}", VALUE)

        await asyncio.gather(*(fill(i) for i in range(args.prefix_keys)))
        for _ in range(5):
            t = time.perf_counter()
            got = list(await raw.get_prefix(pfx.encode()))  # aetcd's records, as a caller uses them
            record("raw prefix read ms", (time.perf_counter() - t) * 1000)
            assert len(got) == args.prefix_keys
            t = time.perf_counter()
            kvs, _ = await store.get_prefix(pfx)
            record("store prefix read ms", (time.perf_counter() - t) * 1000)
            assert len(kvs) == args.prefix_keys
            t = time.perf_counter()
            view = WatchedPrefix(store, pfx)
            await view.start()
            await view.synced(30)
            record("view initial sync ms", (time.perf_counter() - t) * 1000)
            await view.close()
    finally:
        await raw.close()
        await store.close()
    return {k: (max(v) if k.endswith("/s") else statistics.median(v)) for k, v in results.items()}


async def bench_embedded(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="kv-bench-embedded-") as tmp:
        store = EmbeddedStore(tmp)
        try:
            async def put(w: int, i: int) -> None:
                await store.put(f"/e/{w}/{i}", VALUE)

            async def get_cas(w: int, i: int) -> None:
                key = f"/e-rec/{w}"
                got = await store.get(key)
                ok, _ = await store.compare_and_swap(key, got.mod_revision if got else 0, VALUE)
                assert ok

            out = {
                "embedded puts/s": await rate(args.puts * 4, put, args.max_seconds),
                "embedded get+CAS/s": await rate(args.cas * 4, get_cas, args.max_seconds),
            }
            for i in range(args.prefix_keys):
                await store.put(f"/e-prefix/{i:05d}", VALUE)
            times = []
            for _ in range(5):
                t = time.perf_counter()
                kvs, _ = await store.get_prefix("/e-prefix/")
                times.append((time.perf_counter() - t) * 1000)
                assert len(kvs) == args.prefix_keys
            out["embedded prefix read ms"] = statistics.median(times)
            return out
        finally:
            await store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="use this etcd (default: start a throwaway one)")
    ap.add_argument("--puts", type=int, default=5000)
    ap.add_argument("--cas", type=int, default=2000)
    ap.add_argument("--prefix-keys", type=int, default=5000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-seconds", type=float, default=20.0, help="cap per measurement")
    ap.add_argument("--uvloop", action="store_true", help="run on uvloop (as the mesh does)")
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()

    etcd = None if args.endpoint else ThrowawayEtcd()
    try:
        endpoint = args.endpoint or etcd.endpoint
        figures = asyncio.run(bench_etcd(endpoint, args))
        figures.update(asyncio.run(bench_embedded(args)))
    finally:
        if etcd:
            etcd.stop()

    print(f"kv_bench: concurrency {CONCURRENCY}, {args.puts} puts, {args.cas} get+CAS, "
          f"{args.prefix_keys}-key prefix, best of {args.rounds} rounds (prefix reads: median of 5)")
    for name, value in figures.items():
        print(f"  {name:<30} {value:>10.0f}" if name.endswith("/s") else f"  {name:<30} {value:>10.1f}")
    for what in ("puts/s", "get+CAS/s", "prefix read ms"):
        raw_v, store_v = figures[f"raw {what}"], figures[f"store {what}"]
        ratio = store_v / raw_v if what.endswith("/s") else raw_v / store_v
        print(f"  store/raw {what:<20} {ratio:>10.2f}  (1.00 = as fast as raw aetcd)")
    for what in ("puts", "get+CAS"):
        raw_v, store_v = figures[f"raw {what} cpu us/op"], figures[f"store {what} cpu us/op"]
        print(f"  client CPU store/raw {what:<9} {store_v / raw_v:>10.2f}  (< 1.00 = the store costs less CPU)")


if __name__ == "__main__":
    main()
