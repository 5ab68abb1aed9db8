"""Load results reach the CR status through a watch of the mesh's etcd tables, without
waiting for a poll: with the watch on, the controller polls only every 30 s, so a status
that follows the mesh within seconds came from the watch (real etcd, real kube-apiserver)."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from controller_helpers import StatusHistory, ensure_namespace, predictor_state, runtime_doc, start_controller

from modelmesh.apps.controller import open_mesh_store
from modelmesh.controller.kube import PREDICTOR
from modelmesh.controller.mesh_tables import namespace_root, vmodel_of_key
from modelmesh.kv import open_store

NS = "kvwatch-ns"


def test_keys_map_to_vmodels():
    p = "r/mm/modelmesh-serving/"
    assert vmodel_of_key(p + "vmodels/my-model", p) == "my-model"
    assert vmodel_of_key(p + "registry/my-model__isvc-0123456789", p) == "my-model"
    assert vmodel_of_key(p + "instances/pod-1", p) is None
    assert namespace_root("r", "user", "ctl", False) == "r/mm_ns/user"
    assert namespace_root("r", "ctl", "ctl", False) == "r"


@pytest.fixture(scope="module")
async def env(kube, etcd, mesh_endpoint, mesh_standin):
    await ensure_namespace(kube, NS)
    conn = {"endpoints": etcd.endpoint, "root_prefix": "kvtest"}
    await kube.apply({"apiVersion": "v1", "kind": "Secret",
                      "metadata": {"name": "model-serving-etcd", "namespace": NS},
                      "data": {"etcd_connection": base64.b64encode(json.dumps(conn).encode()).decode()}})
    controller = await start_controller(kube, NS, {"modelMeshEndpoint": mesh_endpoint}, kv_opener=open_mesh_store)
    assert controller.ctx.kv_watch_active
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    store = await open_store(f"etcd:{etcd.endpoint}", None)
    preds = await StatusHistory(kube, PREDICTOR, NS, predictor_state).start()
    yield kube, mesh_standin, store, preds
    await preds.stop()
    await store.close()
    await controller.stop()


async def test_status_follows_the_vmodels_table(env):
    kube, mesh, store, preds = env
    await kube.apply({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
                      "metadata": {"name": "kv-pred", "namespace": NS},
                      "spec": {"modelType": {"name": "sklearn"}, "storage": {"path": "m"}}})
    await preds.reaches("kv-pred", ("Loading", "", "UpToDate", True))
    # Let the reconciles caused by the controller's own status writes finish: after that the
    # next poll is 30 s away, so only the table watch can bring the Loaded state sooner.
    loop = asyncio.get_running_loop()
    seen, quiet_since = len(mesh.set_calls("kv-pred")), loop.time()
    while loop.time() - quiet_since < 1.0:
        await asyncio.sleep(0.1)
        if len(mesh.set_calls("kv-pred")) != seen:
            seen, quiet_since = len(mesh.set_calls("kv-pred")), loop.time()
    model_id = mesh.target_of("kv-pred")
    mesh.complete(model_id)
    # What the mesh writes when the load completes (its vmodel record).
    await store.put("kvtest/mm/modelmesh-serving/vmodels/kv-pred",
                    json.dumps({"o": "ksp", "amid": model_id, "tmid": model_id}).encode())
    started = loop.time()
    await preds.reaches("kv-pred", ("Loaded", "", "UpToDate", True), timeout=10)  # < the 30 s poll
    assert loop.time() - started < 10 and len(mesh.set_calls("kv-pred")) > seen
