"""pvc: link, never copy; the path and every symlink in it stay inside the claim's mount."""

from __future__ import annotations

import json
import os

import pytest

from modelmesh.storage import PullError, PullInputError


@pytest.fixture
def claim(layout):
    model = layout.pvc / "claim" / "models" / "mnist"
    model.mkdir(parents=True)
    (model / "weights.bin").write_bytes(b"w" * 1000)
    (model / "sub").mkdir()
    (model / "sub" / "cfg").write_bytes(b"c" * 24)
    (layout.pvc / "claim" / "schemas").mkdir()
    (layout.pvc / "claim" / "schemas" / "mnist").write_text("{}")
    layout.write_config("mypvc", {"type": "pvc", "name": "claim"})
    return layout.pvc / "claim"


async def test_pvc_model_is_linked_with_schema_and_size(layout, puller, claim):
    key = {"storage_key": "mypvc", "schema_path": "schemas/mnist", "model_type": {"name": "onnx"}, "extra": 7}
    pulled = await puller.pull("m1", "models/mnist", json.dumps(key))
    assert pulled.local_path == str(layout.root / "m1" / "mnist")
    assert os.path.islink(pulled.local_path)
    assert os.path.realpath(pulled.local_path) == str(claim / "models" / "mnist")
    assert pulled.schema_path == str(layout.root / "m1" / "_schema.json")  # name collides with the model
    assert pulled.disk_size_bytes == 1000 + 24 + 2
    assert pulled.model_key == {"schema_path": pulled.schema_path, "model_type": {"name": "onnx"}, "extra": 7,
                                "disk_size_bytes": 1026}


async def test_pvc_from_storage_params_without_a_config_file(layout, puller, claim):
    key = {"storage_params": {"type": "pvc", "name": "claim"}}
    pulled = await puller.pull("m2", "models/mnist/weights.bin", json.dumps(key))
    assert pulled.local_path.endswith("/m2/weights.bin") and pulled.disk_size_bytes == 1000


@pytest.mark.parametrize("path", ["../../etc", "models/../../..", "/../../etc"])
async def test_pvc_path_escape_rejected(layout, puller, claim, path):
    with pytest.raises(PullInputError, match="escapes the PVC|invalid model path"):
        await puller.pull("m", path, '{"storage_key": "mypvc"}')
    assert layout.leftovers() == []


async def test_pvc_symlink_to_outside_rejected(layout, puller, claim, tmp_path):
    (tmp_path / "secret").write_text("s")
    os.symlink(tmp_path / "secret", claim / "models" / "mnist" / "sub" / "evil")
    with pytest.raises(PullInputError, match="links outside the volume"):
        await puller.pull("m", "models/mnist", '{"storage_key": "mypvc"}')
    os.symlink(tmp_path, claim / "outside")
    with pytest.raises(PullInputError, match="escapes the PVC"):
        await puller.pull("m", "outside/secret", '{"storage_key": "mypvc"}')
    assert layout.leftovers() == []


async def test_pvc_missing_path_and_missing_claim(layout, puller, claim):
    with pytest.raises(PullError, match="does not exist in PVC 'claim'"):
        await puller.pull("m", "models/nope", '{"storage_key": "mypvc"}')
    with pytest.raises(PullError, match="PVC 'other' is not mounted"):
        await puller.pull("m", "x", '{"storage_params": {"type": "pvc", "name": "other"}}')
    with pytest.raises(PullInputError, match="invalid PVC name"):
        await puller.pull("m", "x", '{"storage_params": {"type": "pvc", "name": ".."}}')
    assert layout.leftovers() == []


async def test_remove_purge_and_reload_replaces(layout, puller, claim):
    await puller.pull("a", "models/mnist", '{"storage_key": "mypvc"}')
    await puller.pull("a", "models/mnist/weights.bin", '{"storage_key": "mypvc"}')  # reload replaces
    assert sorted(os.listdir(layout.root / "a")) == ["weights.bin"]
    await puller.pull("b", "models/mnist", '{"storage_key": "mypvc"}')
    await puller.remove("a")
    await puller.remove("never-loaded")
    assert not (layout.root / "a").exists() and (layout.root / "b").exists()
    (layout.root / "_triton_models").mkdir()
    await puller.purge()
    assert os.listdir(layout.root) == []
    assert (claim / "models" / "mnist" / "weights.bin").exists()  # purge never follows links


async def test_unknown_storage_type(layout, puller):
    with pytest.raises(PullInputError, match="unsupported storage type 'ftp'"):
        await puller.pull("m", "x", '{"storage_params": {"type": "ftp"}}')
