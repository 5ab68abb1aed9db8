"""Pull throughput from S3 (moto server): the puller vs a single-stream download.

    .venv/bin/python perf/pull_bench.py                  # starts a throwaway moto S3 on 127.0.0.1
    .venv/bin/python perf/pull_bench.py --big-mb 200 --files 1000 --file-kb 64 --rounds 2

Two models: one object of --big-mb MB, and --files objects of --file-kb KB each.
  puller        modelmesh.storage.Puller (aioboto3; parallel ranged GETs of large objects,
                --concurrency requests in flight across objects and parts)
  puller no-range  the same with PULL_PART_SIZE_BYTES=0: one stream per object, objects in parallel
  single-stream boto3, one GET at a time, each streamed to its file (`aws s3 cp` without
                multipart: the reference puller's behaviour)
  obstore       (if installed) the same parallel ranged plan through obstore, for the
                library comparison
MB/s = model bytes / wall seconds, best of --rounds; ratio = client / single-stream;
client CPU = this process's CPU seconds (all threads) for the pull.
On a 2-core machine moto (Python) is the bottleneck: figures are a floor for the client. moto
also reads a whole object for every ranged GET (a 1 MiB range of a 200 MiB object costs a
third of the full GET), so ranged parts lose there; on S3 itself they are the way past the
per-connection limit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

BUCKET = "bench"


async def seed(endpoint: str, big_mb: int, files: int, file_kb: int) -> None:
    import aioboto3

    session = aioboto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
    async with session.client("s3", endpoint_url=endpoint) as s3:
        await s3.create_bucket(Bucket=BUCKET)
        await s3.put_object(Bucket=BUCKET, Key="big/model.bin", Body=os.urandom(big_mb * 1024 * 1024))
        sem = asyncio.Semaphore(16)
        body = os.urandom(file_kb * 1024)

        async def put(i: int) -> None:
            async with sem:
                await s3.put_object(Bucket=BUCKET, Key=f"small/f{i:05d}.bin", Body=body)

        await asyncio.gather(*(put(i) for i in range(files)))


async def run_puller(endpoint: str, prefix: str, work: Path, concurrency: int, part: int) -> int:
    from modelmesh.storage import Puller
    from modelmesh.storage.providers.base import TransferTuning

    cfg = work / "cfg"
    cfg.mkdir(exist_ok=True)
    (cfg / "default").write_text(json.dumps({"type": "s3", "endpoint_url": endpoint, "bucket": BUCKET,
                                             "access_key_id": "k", "secret_access_key": "s"}))
    puller = Puller(str(work / "root"), str(cfg), tuning=TransferTuning(concurrency=concurrency, part_size=part))
    try:
        return (await puller.pull("bench", prefix, "")).disk_size_bytes
    finally:
        await puller.close()


def run_single_stream(endpoint: str, prefix: str, work: Path) -> int:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s",
                      region_name="us-east-1")
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for obj in page.get("Contents", ()):
            path = work / obj["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            body = s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"]
            with open(path, "wb") as f:
                for chunk in body.iter_chunks(1 << 20):
                    f.write(chunk)
                    total += len(chunk)
    return total


async def run_obstore(endpoint: str, prefix: str, work: Path, concurrency: int, part: int) -> int:
    import obstore
    from obstore.store import S3Store

    store = S3Store(BUCKET, endpoint=endpoint, access_key_id="k", secret_access_key="s", region="us-east-1",
                    client_options={"allow_http": True})
    objects = [o for batch in obstore.list(store, prefix=prefix + "/") for o in batch]
    sem = asyncio.Semaphore(concurrency)

    async def ranged(key: str, size: int) -> None:
        path = work / key
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            async def one(start: int) -> None:
                async with sem:
                    data = await obstore.get_range_async(store, key, start=start, end=min(start + part, size))
                os.pwrite(fd, memoryview(data), start)

            await asyncio.gather(*(one(s) for s in range(0, size, part)))
        finally:
            os.close(fd)

    await asyncio.gather(*(ranged(o["path"], o["size"]) for o in objects))
    return sum(o["size"] for o in objects)


def timed(fn) -> tuple[float, float, int]:
    """(wall s, client CPU s of this process, all threads, bytes)."""
    t, c = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - t, time.process_time() - c, n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", help="an existing S3 endpoint with the bench bucket seeded (default: start moto)")
    ap.add_argument("--big-mb", type=int, default=200)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--file-kb", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--part-mb", type=int, default=8, help="ranged part size of the puller and obstore runs")
    args = ap.parse_args()

    server = None
    endpoint = args.endpoint
    if endpoint is None:
        from harness.services import S3Server

        server = S3Server(Path(tempfile.mkdtemp(prefix="pull-bench-moto-"))).start()
        endpoint = server.endpoint
    try:
        if server is not None:
            t = time.perf_counter()
            asyncio.run(seed(endpoint, args.big_mb, args.files, args.file_kb))
            took = time.perf_counter() - t
            print(f"seeded {args.big_mb} MB object + {args.files} x {args.file_kb} KB in {took:.1f}s")
        try:
            import obstore  # noqa: F401
            have_obstore = True
        except ImportError:
            have_obstore = False
        part = args.part_mb << 20
        print(f"{'model':<22}{'client':<18}{'MB/s':>9}{'seconds':>10}{'client CPU s':>14}{'vs single':>11}")
        for label, prefix in ((f"1 x {args.big_mb} MB", "big"), (f"{args.files} x {args.file_kb} KB", "small")):
            runs = {
                "single-stream": lambda w, p=prefix: run_single_stream(endpoint, p, w),
                "puller": lambda w, p=prefix: asyncio.run(run_puller(endpoint, p, w, args.concurrency, part)),
                "puller no-range": lambda w, p=prefix: asyncio.run(run_puller(endpoint, p, w, args.concurrency, 0)),
            }
            if have_obstore:
                runs["obstore"] = lambda w, p=prefix: asyncio.run(run_obstore(endpoint, p, w, args.concurrency, part))
            best: dict[str, tuple[float, float, int]] = {}
            for _ in range(args.rounds):
                for name, fn in runs.items():
                    work = Path(tempfile.mkdtemp(prefix="pull-bench-"))
                    try:
                        secs, cpu, n = timed(lambda f=fn, w=work: f(w))
                    finally:
                        shutil.rmtree(work, ignore_errors=True)
                    if name not in best or secs < best[name][0]:
                        best[name] = (secs, cpu, n)
            base = best["single-stream"][2] / best["single-stream"][0]
            for name, (secs, cpu, n) in best.items():
                rate = n / secs
                print(f"{label:<22}{name:<18}{rate / 1e6:>9.1f}{secs:>10.2f}{cpu:>14.2f}{rate / base:>10.2f}x")
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
