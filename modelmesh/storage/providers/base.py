"""What every provider implements, and the download engine shared by the object stores."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.paths import confined_join, normalize_prefix
from modelmesh.storage.retry import RetryPolicy, with_retries


class Provider(Protocol):
    async def fetch(self, config: dict[str, Any], remote_path: str, dest: str) -> None:
        """Put the model at `remote_path` at local path `dest` (a file or a directory).

        `dest` does not exist yet and its parent does. Raise PullInputError for bad
        config, PullError for storage failures; the caller removes partial files.
        """

    async def close(self) -> None: ...


@dataclass(frozen=True)
class TransferTuning:
    concurrency: int = 16  # parallel requests per pull (objects and parts together)
    part_size: int = 8 * 1024 * 1024  # objects larger than this are fetched in ranged parts (0: never)


@dataclass(frozen=True)
class RemoteObject:
    key: str
    size: int


def plan_objects(prefix_path: str, objects: Iterable[RemoteObject], dest: str,
                 where: str) -> list[tuple[RemoteObject, str]]:
    """Map a listing onto local paths with the reference's prefix semantics.

    `models/mnist` matches the object `models/mnist` (a single-file model, written to
    `dest`) or objects under `models/mnist/` (written below `dest`), never
    `models/mnist2/...`. Zero-size objects and keys ending in `/` (folder markers) are
    skipped. No matching object at all is an error.
    """
    prefix = normalize_prefix(prefix_path)
    child_prefix = prefix + "/" if prefix else ""
    single: RemoteObject | None = None
    children: list[RemoteObject] = []
    for obj in objects:
        if obj.size == 0 or obj.key.endswith("/"):
            continue
        if prefix and obj.key == prefix:
            single = obj
        elif obj.key.startswith(child_prefix):
            children.append(obj)
    if single and children:
        raise PullInputError(f"{where}: {prefix!r} is both an object and a folder; use a path that names one")
    if single:
        return [(single, dest)]
    if not children:
        raise PullError(f"no objects found under {prefix!r} in {where}")
    return [(obj, confined_join(dest, obj.key[len(child_prefix):])) for obj in children]


def create_file(path: str, size: int | None = None) -> int:
    """Create `path` exclusively, never through a symlink; optionally preallocate."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    if size:
        os.ftruncate(fd, size)
    return fd


# (key, first byte, last byte inclusive) -> the bytes as chunks; (key, None, None) = whole object.
ObjectReader = Callable[[str, int | None, int | None], AsyncIterator[bytes]]


class ObjectDownloader:
    """Downloads planned objects with bounded parallelism; big ones in ranged parts.

    One semaphore covers objects and parts, so a model of many small files and a model of
    one huge file both keep `concurrency` requests in flight. Chunks are written at their
    offset as they arrive (no part is buffered whole); a failed part is retried alone.
    """

    def __init__(self, tuning: TransferTuning, retry: RetryPolicy) -> None:
        self.tuning = tuning
        self.retry = retry

    async def download(self, plan: list[tuple[RemoteObject, str]], read: ObjectReader) -> None:
        sem = asyncio.Semaphore(self.tuning.concurrency)
        part = self.tuning.part_size
        async with asyncio.TaskGroup() as tg:
            for obj, path in plan:
                if part and obj.size > part:
                    tg.create_task(self._ranged(obj, path, read, sem))
                else:
                    tg.create_task(self._whole(obj, path, read, sem))

    async def _copy(self, fd: int, chunks: AsyncIterator[bytes], offset: int, expected: int, what: str) -> None:
        end = offset + expected
        async for chunk in chunks:
            if offset + len(chunk) > end:
                raise PullError(f"{what}: the server sent more bytes than the listing said")
            os.pwrite(fd, chunk, offset)  # page-cache writes of <= 1 MiB: well under a millisecond
            offset += len(chunk)
        if offset != end:
            raise PullError(f"{what}: got {expected - (end - offset)} of {expected} bytes")

    async def _whole(self, obj: RemoteObject, path: str, read: ObjectReader, sem: asyncio.Semaphore) -> None:
        async with sem:
            fd = await asyncio.to_thread(create_file, path)
            try:
                async def attempt() -> None:
                    os.ftruncate(fd, 0)
                    await self._copy(fd, read(obj.key, None, None), 0, obj.size, f"object {obj.key!r}")

                await with_retries(self.retry, f"get {obj.key}", attempt)
            finally:
                os.close(fd)

    async def _ranged(self, obj: RemoteObject, path: str, read: ObjectReader, sem: asyncio.Semaphore) -> None:
        fd = await asyncio.to_thread(create_file, path, obj.size)
        try:
            async def part(start: int) -> None:
                end = min(start + self.tuning.part_size, obj.size) - 1
                what = f"object {obj.key!r} bytes {start}-{end}"
                async with sem:
                    await with_retries(self.retry, f"get {what}",
                                       lambda: self._copy(fd, read(obj.key, start, end), start, end - start + 1, what))

            async with asyncio.TaskGroup() as tg:
                for start in range(0, obj.size, self.tuning.part_size):
                    tg.create_task(part(start))
        finally:
            os.close(fd)
