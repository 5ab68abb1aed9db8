"""An etcd v3 gRPC front on the embedded store, so other processes (the mesh instances of
`modelmesh local`, run as child processes) share it with `KV_STORE=etcd:http://127.0.0.1:<port>`.

It serves the part of etcd's KV, Watch and Lease services that our etcd driver (etcd.py)
uses, with aetcd's generated etcd messages and servicers (no protos of our own):
- KV.Range (single key, prefix, or any [key, range_end)), count_only; a listing is always one
  page at the current revision (`limit` and a past `revision` are not honoured: the embedded
  store keeps no old versions, so paging could not be consistent).
- KV.Put, KV.DeleteRange, KV.Compact, and KV.Txn with compares on MOD, CREATE, VALUE, LEASE
  (and VERSION against 0, "absent") and Put / DeleteRange / Range / nested Txn operations.
  Every write of a transaction gets one revision, as in etcd. Reads inside a transaction
  see the state before its writes.
- Watch: several watches per stream, from a past revision (WatchCompacted history answers
  with compact_revision, as etcd does), from now, or from a future revision; cancel.
- Lease: Grant, Revoke, KeepAlive. A lease here lives as long as its holder keeps it alive
  (TTL at least 2 s, as etcd grants): a mesh process that dies loses its instance record.
No auth, no TLS: it listens on loopback only, for this machine's own processes.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable

import grpc
from aetcd import rpc
from aetcd.rpc import rpc_pb2_grpc

from modelmesh.kv.api import EventType, KeyValue, LeaseLost, StoreUnavailable, WatchCompacted
from modelmesh.kv.embedded import EmbeddedStore
from modelmesh.kv.etcd import prefix_range
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.kv.etcd_front")

MIN_LEASE_TTL_S = 2
_CMP = rpc.Compare.CompareResult
_TARGET = rpc.Compare.CompareTarget
_DELETE_EVENT = rpc.Event.EventType.DELETE
_PUT_EVENT = rpc.Event.EventType.PUT
_LEASE_NOT_FOUND = "etcdserver: requested lease not found"


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def _text(key: bytes) -> str:
    try:
        return key.decode()
    except UnicodeDecodeError:
        raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "keys must be UTF-8 (the embedded store keeps text keys)") \
            from None


class _KeyRange:
    """What a (key, range_end) pair of a request selects."""

    def __init__(self, key: bytes, range_end: bytes) -> None:
        self.key, self.end = key, range_end
        self.single = not range_end
        self.prefix: str | None = None
        if self.single:
            self.text = _text(key)
        elif key and prefix_range(key) == (key, range_end):
            self.prefix = _text(key)

    def contains(self, key: str) -> bool:
        if self.single:
            return key == self.text
        if self.prefix is not None:
            return key.startswith(self.prefix)
        raw = key.encode()
        return raw >= self.key and (self.end == b"\0" or raw < self.end)

    def read(self, store: EmbeddedStore) -> list[KeyValue]:
        if self.single:
            kv = store.get_now(self.text)
            return [kv] if kv is not None else []
        if self.prefix is not None:
            return store.get_prefix_now(self.prefix)[0]
        return [kv for kv in store.get_prefix_now("")[0] if self.contains(kv.key)]

    @property
    def watch_prefix(self) -> str:
        return self.text if self.single else self.prefix if self.prefix is not None else ""


def _pb(kv: KeyValue) -> rpc.KeyValue:
    return rpc.KeyValue(key=kv.key.encode(), value=kv.value, mod_revision=kv.mod_revision,
                        create_revision=kv.create_revision, lease=kv.lease, version=1)


class EtcdFront:
    """`await EtcdFront(store).start()`; `endpoint` is then the etcd URL to give to clients."""

    def __init__(self, store: EmbeddedStore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store
        self.host = host
        self.port = port
        self._server: grpc.aio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> EtcdFront:
        server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 * 1024 * 1024),
                                          ("grpc.max_send_message_length", 512 * 1024 * 1024),
                                          ("grpc.so_reuseport", 0)])
        rpc_pb2_grpc.add_KVServicer_to_server(_KV(self), server)
        rpc_pb2_grpc.add_WatchServicer_to_server(_Watch(self), server)
        rpc_pb2_grpc.add_LeaseServicer_to_server(_Lease(self), server)
        port = server.add_insecure_port(f"{self.host}:{self.port}")
        if port == 0:
            raise OSError(f"etcd front: cannot listen on {self.host}:{self.port}")
        self.port = port
        await server.start()
        self._server = server
        log.info("etcd front serving the embedded store", endpoint=self.endpoint)
        return self

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.stop(grace=0.5)
            self._server = None

    # --- shared by the services --------------------------------------------------------

    def header(self, revision: int | None = None) -> rpc.ResponseHeader:
        rev = self.store.current_revision if revision is None else revision
        return rpc.ResponseHeader(cluster_id=1, member_id=1, revision=rev, raft_term=1)

    def spawn(self, coro, name: str) -> asyncio.Task:
        """A stream's helper task, owned here: failures are logged, stop() cancels it."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("etcd front task failed", task=task.get_name(), error=repr(task.exception()))

    def lease_of(self, lease_id: int):
        if not lease_id:
            return None
        lease = self.store.lease(lease_id)
        if lease is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, _LEASE_NOT_FOUND)
        return lease


async def _answer(context: grpc.aio.ServicerContext, fn: Callable[[], object]):
    try:
        return fn()
    except _Abort as e:
        await context.abort(e.code, e.details)
    except LeaseLost:
        await context.abort(grpc.StatusCode.NOT_FOUND, _LEASE_NOT_FOUND)
    except StoreUnavailable as e:
        await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))


class _KV(rpc_pb2_grpc.KVServicer):
    def __init__(self, front: EtcdFront) -> None:
        self.front = front
        self.store = front.store

    async def Range(self, request, context):
        return await _answer(context, lambda: self._range(request))

    async def Put(self, request, context):
        return await _answer(context, lambda: self._txn(rpc.TxnRequest(
            success=[rpc.RequestOp(request_put=request)])).responses[0].response_put)

    async def DeleteRange(self, request, context):
        return await _answer(context, lambda: self._txn(rpc.TxnRequest(
            success=[rpc.RequestOp(request_delete_range=request)])).responses[0].response_delete_range)

    async def Txn(self, request, context):
        return await _answer(context, lambda: self._txn(request))

    async def Compact(self, request, context):
        if request.revision > self.store.current_revision:
            await context.abort(grpc.StatusCode.OUT_OF_RANGE, "mvcc: required revision is a future revision")
        await self.store.compact(request.revision)
        return rpc.CompactionResponse(header=self.front.header())

    # --- evaluation: nothing below awaits, so a transaction is atomic ------------------

    def _range(self, request) -> rpc.RangeResponse:
        kvs = _KeyRange(request.key, request.range_end).read(self.store)
        header = self.front.header()
        if request.count_only:
            return rpc.RangeResponse(header=header, count=len(kvs))
        if request.keys_only:
            return rpc.RangeResponse(header=header, count=len(kvs),
                                     kvs=[rpc.KeyValue(key=kv.key.encode(), mod_revision=kv.mod_revision,
                                                       create_revision=kv.create_revision, lease=kv.lease)
                                          for kv in kvs])
        return rpc.RangeResponse(header=header, count=len(kvs), kvs=[_pb(kv) for kv in kvs])

    def _txn(self, request) -> rpc.TxnResponse:
        writes: list[tuple[str, bytes | None, object]] = []
        response = self._plan(request, writes)
        keys = [k for k, _, _ in writes]
        if len(set(keys)) != len(keys):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request")
        revision = self.store.apply(writes) if writes else self.store.current_revision
        self._stamp(response, self.front.header(revision))
        return response

    def _stamp(self, response, header) -> None:
        response.header.CopyFrom(header)
        for op in response.responses:
            which = op.WhichOneof("response")
            if which == "response_txn":
                self._stamp(op.response_txn, header)
            elif which is not None:
                getattr(op, which).header.CopyFrom(header)

    def _plan(self, request, writes: list) -> rpc.TxnResponse:
        """The response of `request`, with the writes it makes appended to `writes`."""
        succeeded = all(self._holds(c) for c in request.compare)
        out = rpc.TxnResponse(succeeded=succeeded)
        for op in (request.success if succeeded else request.failure):
            which = op.WhichOneof("request")
            if which == "request_range":
                out.responses.add(response_range=self._range(op.request_range))
            elif which == "request_put":
                put = op.request_put
                if put.ignore_value or put.ignore_lease:
                    raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "put with ignore_value/ignore_lease")
                key = _text(put.key)
                resp = rpc.PutResponse()
                prev = self.store.get_now(key)
                if put.prev_kv and prev is not None:
                    resp.prev_kv.CopyFrom(_pb(prev))
                writes.append((key, put.value, self.front.lease_of(put.lease)))
                out.responses.add(response_put=resp)
            elif which == "request_delete_range":
                delete = op.request_delete_range
                existing = _KeyRange(delete.key, delete.range_end).read(self.store)
                resp = rpc.DeleteRangeResponse(deleted=len(existing))
                if delete.prev_kv:
                    resp.prev_kvs.extend(_pb(kv) for kv in existing)
                writes.extend((kv.key, None, None) for kv in existing)
                out.responses.add(response_delete_range=resp)
            elif which == "request_txn":
                out.responses.add(response_txn=self._plan(op.request_txn, writes))
            else:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "empty request op")
        return out

    def _holds(self, compare) -> bool:
        if compare.range_end:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "compare over a key range")
        kv = self.store.get_now(_text(compare.key))
        target = compare.target
        if target == _TARGET.MOD:
            have, want = (kv.mod_revision if kv else 0), compare.mod_revision
        elif target == _TARGET.CREATE:
            have, want = (kv.create_revision if kv else 0), compare.create_revision
        elif target == _TARGET.VALUE:
            if kv is None:
                return False  # etcd: a value compare on a missing key is false
            have, want = kv.value, compare.value
        elif target == _TARGET.LEASE:
            have, want = (kv.lease if kv else 0), compare.lease
        elif target == _TARGET.VERSION and compare.version == 0:
            have, want = (1 if kv else 0), 0  # versions are not kept; "absent" is what callers ask
        else:
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, "compare on a version other than 0")
        result = compare.result
        if result == _CMP.EQUAL:
            return have == want
        if result == _CMP.NOT_EQUAL:
            return have != want
        if result == _CMP.GREATER:
            return have > want
        return have < want


class _Watch(rpc_pb2_grpc.WatchServicer):
    def __init__(self, front: EtcdFront) -> None:
        self.front = front
        self.store = front.store

    async def Watch(self, request_iterator, context) -> AsyncIterator[rpc.WatchResponse]:
        out: asyncio.Queue[rpc.WatchResponse | None] = asyncio.Queue()
        watches: dict[int, asyncio.Task] = {}
        ids = itertools.count(1)

        async def read_requests() -> None:
            async for req in request_iterator:
                which = req.WhichOneof("request_union")
                if which == "create_request":
                    watch_id = next(ids)
                    watches[watch_id] = self.front.spawn(self._follow(watch_id, req.create_request, out),
                                                         f"etcd-front-watch-{watch_id}")
                elif which == "cancel_request":
                    task = watches.pop(req.cancel_request.watch_id, None)
                    if task is not None:
                        task.cancel()
                        out.put_nowait(rpc.WatchResponse(header=self.front.header(),
                                                          watch_id=req.cancel_request.watch_id, canceled=True))
                elif which == "progress_request":
                    out.put_nowait(rpc.WatchResponse(header=self.front.header(), watch_id=-1))
            out.put_nowait(None)  # the client closed its side

        reader = self.front.spawn(read_requests(), "etcd-front-watch-requests")
        try:
            while True:
                resp = await out.get()
                if resp is None:
                    return
                yield resp
        finally:
            reader.cancel()
            for task in watches.values():
                task.cancel()

    async def _follow(self, watch_id: int, create, out: asyncio.Queue) -> None:
        keys = _KeyRange(create.key, create.range_end)
        start = create.start_revision or self.store.current_revision + 1
        out.put_nowait(rpc.WatchResponse(header=self.front.header(start - 1 if not create.start_revision else None),
                                         watch_id=watch_id, created=True))
        stream = self.store.watch_prefix(keys.watch_prefix, start)
        try:
            async for batch in stream:
                events = [rpc.Event(type=_DELETE_EVENT if e.type is EventType.DELETE else _PUT_EVENT,
                                    kv=rpc.KeyValue(key=e.key.encode(), value=e.value, mod_revision=e.mod_revision))
                          for e in batch if keys.contains(e.key)]
                if events:
                    out.put_nowait(rpc.WatchResponse(header=self.front.header(batch[-1].mod_revision),
                                                     watch_id=watch_id, events=events))
        except WatchCompacted as e:
            out.put_nowait(rpc.WatchResponse(header=self.front.header(), watch_id=watch_id, canceled=True,
                                             compact_revision=e.compact_revision,
                                             cancel_reason="mvcc: required revision has been compacted"))
            return
        except StoreUnavailable:
            pass
        finally:
            await stream.aclose()
        out.put_nowait(None)  # the store closed: end the stream (clients re-open it)


class _Lease(rpc_pb2_grpc.LeaseServicer):
    def __init__(self, front: EtcdFront) -> None:
        self.front = front
        self.store = front.store

    async def LeaseGrant(self, request, context):
        if request.ID:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "choosing the lease ID is not supported")
        try:
            lease = await self.store.grant_lease(max(MIN_LEASE_TTL_S, request.TTL), keep_alive=False)
        except StoreUnavailable as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(e))
        return rpc.LeaseGrantResponse(header=self.front.header(), ID=lease.id, TTL=lease.ttl_s)

    async def LeaseRevoke(self, request, context):
        lease = self.store.lease(request.ID)
        if lease is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, _LEASE_NOT_FOUND)
        await lease.revoke()
        return rpc.LeaseRevokeResponse(header=self.front.header())

    async def LeaseKeepAlive(self, request_iterator, context) -> AsyncIterator[rpc.LeaseKeepAliveResponse]:
        async for req in request_iterator:
            lease = self.store.lease(req.ID)
            ttl = lease.refresh() if lease is not None else 0
            yield rpc.LeaseKeepAliveResponse(header=self.front.header(), ID=req.ID, TTL=ttl)
