"""Pure parts of the mesh: protobuf splicing, type constraints, placement, the LRU cache."""


import pytest

from modelmesh.mesh.cache import CopyState, LocalCache, unload_reserve_bytes
from modelmesh.mesh.constraints import TypeConstraints
from modelmesh.mesh.dataplane import DataPlaneConfig
from modelmesh.mesh.placement import choose_instance
from modelmesh.mesh.protowire import WireError, extract_string, inject_string
from modelmesh.mesh.records import InstanceRecord, ModelRecord, VModelRecord
from modelmesh.protos import grpc_predict_v2_pb2 as v2


def _infer(name="m", payload=b"\x00" * 1000) -> bytes:
    req = v2.ModelInferRequest(model_name=name, id="req-1")
    req.inputs.add(name="x", datatype="BYTES", shape=[1])
    req.raw_input_contents.append(payload)
    return req.SerializeToString()


def test_extract_and_inject_top_level_field():
    data = _infer("client-name")
    assert extract_string(data, (1,)) == "client-name"
    assert extract_string(data, (3,)) == "req-1"
    assert extract_string(data, (2,)) is None
    spliced = inject_string(data, (1,), "concrete__id")
    parsed = v2.ModelInferRequest.FromString(spliced)
    assert parsed.model_name == "concrete__id" and parsed.id == "req-1"
    assert parsed.raw_input_contents[0] == b"\x00" * 1000  # payload untouched
    assert extract_string(spliced, (1,)) == "concrete__id"


def test_nested_path_like_tf_serving_model_spec_name():
    # Predict{model_spec(1){name(1)}}: build it from the ModelInferRequest types' wire format.
    inner = v2.ModelMetadataRequest(name="tf-model").SerializeToString()  # field 1 = name
    outer = b"\x0a" + bytes([len(inner)]) + inner + b"\x12\x03abc"
    assert extract_string(outer, (1, 1)) == "tf-model"
    spliced = inject_string(outer, (1, 1), "new-id")
    assert extract_string(spliced, (1, 1)) == "new-id"


@pytest.mark.parametrize("garbage", [b"\x0a\xff\xff\xff", b"\x0a\x05ab", b"\x00\x01", b"\x0b"])
def test_garbage_is_a_wire_error(garbage):
    with pytest.raises(WireError):
        extract_string(garbage, (1,))


def test_dataplane_config():
    cfg = DataPlaneConfig.parse('{"rpcConfigs": {"inference.GRPCInferenceService/ModelInfer": '
                                '{"idExtractionPath": [1], "vModelId": true}}, "allowOtherRpcs": false}')
    rc = cfg.for_method("/inference.GRPCInferenceService/ModelInfer")
    assert rc.id_extraction_path == (1,) and rc.vmodel_id
    assert not cfg.allows("/inference.GRPCInferenceService/ServerReady")
    assert DataPlaneConfig.parse("").allows("/anything/Goes")
    with pytest.raises(ValueError, match="idExtractionPath"):
        DataPlaneConfig.parse('{"rpcConfigs": {"a/b": {"idExtractionPath": [0]}}}')


def test_type_constraints():
    tc = TypeConstraints.parse('{"mt:sklearn": {"required": ["mt:sklearn"], "preferred": ["fast"]},'
                               ' "_default": {"required": ["_no_runtime"]}}')
    assert tc.accepts("mt:sklearn", frozenset({"mt:sklearn", "rt:x"}))
    assert not tc.accepts("mt:sklearn", frozenset({"mt:xgboost"}))
    assert not tc.accepts("mt:onnx", frozenset({"mt:sklearn"}))  # falls to _default
    assert TypeConstraints().accepts("anything", frozenset())
    assert TypeConstraints.parse('{"a": {"required": ["a"]}}').for_type("b") is None
    with pytest.raises(ValueError):
        TypeConstraints.parse("[1]")


def _inst(free, lru=0, labels=("mt:sklearn",), loading=0, shutdown=False):
    return InstanceRecord(endpoint="h:1", capacity_bytes=100, used_bytes=100 - free, lru_time=lru, labels=labels,
                          loading_in_progress=loading, shutting_down=shutdown)


def test_placement_prefers_room_then_local_then_oldest_lru():
    tc = TypeConstraints.parse('{"mt:sklearn": {"required": ["mt:sklearn"]}}')
    insts = {"a": _inst(50), "b": _inst(80), "c": _inst(0, lru=5), "d": _inst(0, lru=1)}
    assert choose_instance("mt:sklearn", 10, insts, tc, self_id="a") == "a"  # local has room
    assert choose_instance("mt:sklearn", 10, insts, tc, self_id="x") == "b"  # most room
    assert choose_instance("mt:sklearn", 90, insts, tc, self_id="a") == "d"  # nobody has room: oldest LRU
    assert choose_instance("mt:sklearn", 10, insts, tc, "a", exclude={"a", "b"}) == "d"
    assert choose_instance("mt:xgboost", 10, insts, tc, "a") is None
    assert choose_instance("mt:sklearn", 10, {"s": _inst(90, shutdown=True)}, tc, "a") is None


async def test_cache_lru_capacity_and_churn_age():
    cache = LocalCache(capacity_bytes=30, min_churn_age_ms=1000)
    copies = [cache.reserve(m, 10) for m in "abc"]
    for c, t in zip(copies, (100, 200, 300)):
        cache.mark_loaded(c)
        cache.touch(c, at_ms=t)
    assert cache.free == 0
    with pytest.raises(ValueError):
        cache.reserve("d", 10)
    assert [c.model_id for c in cache.eviction_candidates(15, now=5000)] == ["a", "b"]
    assert cache.eviction_candidates(15, now=1150) is None  # b is younger than the churn age
    copies[0].inflight = 1  # in use: never evicted
    assert [c.model_id for c in cache.eviction_candidates(10, now=5000)] == ["b"]
    cache.begin_unload(copies[1])
    assert cache.used == 30  # unloading still holds its space
    await cache.release(copies[1])
    assert cache.used == 20 and cache.get("b") is None
    fail = cache.reserve("e", 10)
    await cache.release(fail, RuntimeError("boom"))
    with pytest.raises(RuntimeError):
        await fail.ready
    assert cache.used == 20 and copies[2].state is CopyState.LOADED


def test_unload_buffer_size_follows_the_reference():
    # loadingThreads x defaultModelSize / 2 (two threads or fewer) or / 4, within 1%..10% of the
    # capacity, in 8 KiB units (1 MB default = 123 units).
    assert unload_reserve_bytes(400 * 2**20, 2, 1_000_000) == 512 * 8192  # 1% floor
    assert unload_reserve_bytes(11_000_000, 4, 1_000_000) == 123 * 8192
    assert unload_reserve_bytes(3_000_000, 4, 1_000_000) == 36 * 8192  # 10% ceiling
    assert unload_reserve_bytes(2**30, 1, 1_000_000) == 1310 * 8192  # max(61, 1310)
    assert unload_reserve_bytes(0, 2, 1_000_000) == 0


async def test_cache_unload_buffer_lets_a_load_start_while_its_room_unloads():
    cache = LocalCache(capacity_bytes=40, min_churn_age_ms=0, unload_reserve_bytes=10)
    copies = [cache.reserve(m, 10) for m in "abc"]
    for c in copies:
        cache.mark_loaded(c)
    assert cache.model_capacity == 30 and cache.free == 10
    assert (cache.published_capacity, cache.models_used) == (30, 30)  # full: a load evicts
    victims = cache.eviction_candidates(10)
    assert victims == [copies[0]]
    cache.begin_unload(copies[0])
    cache.begin_unload(copies[0])  # twice (evicted, then the unload itself): counted once
    assert cache.unloading == 10
    assert (cache.published_capacity, cache.models_used) == (30, 20)  # room for a load without evicting
    assert cache.eviction_candidates(10) == []  # a's space is already leaving: no second eviction
    assert cache.fits(10)  # from the buffer: the load need not wait for a's unload
    d = cache.reserve("d", 10)
    assert cache.used == 40 and not cache.fits(1)  # loaded + loading + unloading <= capacity
    cache.mark_loaded(d)
    assert [c.model_id for c in cache.eviction_candidates(10)] == ["b"]
    cache.begin_unload(copies[1])
    assert cache.eviction_candidates(10) == [] and not cache.fits(10)  # buffer spent: wait
    assert (cache.published_capacity, cache.models_used) == (20, 20)
    await cache.release(copies[0])
    assert cache.fits(10) and cache.unloading == 10 and cache.used == 30
    cache.resize(copies[1], 12)  # a size learned late still counts as unloading
    await cache.release(copies[1])
    assert cache.unloading == 0 and cache.used == 20


def test_records_round_trip_in_reference_layout():
    m = ModelRecord(type="mt:sklearn", path="p", key='{"k":1}', instance_ids={"i1": 5}, failed_in={"i2": 6},
                    fail_msgs={"i2": "bad"}, auto_delete=True, last_used=7)
    raw = m.to_json()
    assert b'"encKey"' in raw and b'"mPath"' in raw and b'"instanceIds"' in raw and b'"autoDel":true' in raw
    assert ModelRecord.from_json(raw) == m
    vm = VModelRecord(owner="ksp", active_model="a", target_model="b")
    assert VModelRecord.from_json(vm.to_json()) == vm and vm.transitioning
    inst = InstanceRecord(endpoint="1.2.3.4:8080", capacity_bytes=8192 * 10, used_bytes=8192 * 3, labels=("x",))
    assert b'"cap":10' in inst.to_json() and InstanceRecord.from_json(inst.to_json()) == inst
