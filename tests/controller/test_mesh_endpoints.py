"""Without `modelMeshEndpoint` the controller finds the mesh through the ready Endpoints of
the `modelmesh-serving` Service (no kubelet here: the test writes the Endpoints object, as
the endpoints controller would for runtime pods)."""

from __future__ import annotations

import pytest
from controller_helpers import StatusHistory, eventually, predictor_state, runtime_doc, start_controller

from modelmesh.controller.kube import ENDPOINTS, PREDICTOR, SERVING_RUNTIME

NS = "endpoints-ns"


def endpoints(ready: list[tuple[str, int]], not_ready: list[tuple[str, int]] = ()) -> dict:
    subsets = []
    for ip, port in ready:
        subsets.append({"addresses": [{"ip": ip}], "ports": [{"name": "grpc", "port": port}]})
    for ip, port in not_ready:
        subsets.append({"notReadyAddresses": [{"ip": ip}], "ports": [{"name": "grpc", "port": port}]})
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "modelmesh-serving", "namespace": NS},
            "subsets": subsets}


@pytest.fixture(scope="module")
async def env(kube, mesh_standin):
    controller = await start_controller(kube, NS, {})
    await kube.apply(runtime_doc("mlserver-1.x", NS))
    preds = await StatusHistory(kube, PREDICTOR, NS, predictor_state).start()
    yield kube, controller, mesh_standin, preds
    await preds.stop()
    await controller.stop()


async def test_resolves_ready_endpoints_only(env):
    kube, controller, _, _ = env
    # Endpoints may not hold loopback addresses, and tests only dial loopback: the resolved
    # targets are checked here, with no predictor in the namespace so nothing dials them.
    await kube.apply(endpoints([("10.1.2.3", 8033), ("10.1.2.4", 8033)], not_ready=[("10.1.2.5", 8033)]))
    targets, tls = await controller._resolve_mesh(NS)
    assert targets == ["10.1.2.3:8033", "10.1.2.4:8033"] and tls is None
    await kube.apply(endpoints([], not_ready=[("10.1.2.5", 8033)]))
    assert (await controller._resolve_mesh(NS))[0] == []


async def test_pending_without_mesh_and_finalizer_released_when_no_runtime_is_left(env):
    kube, controller, mesh, preds = env
    await kube.apply(endpoints([], not_ready=[("10.1.2.5", 8033)]))
    await kube.apply({"apiVersion": "serving.kserve.io/v1alpha1", "kind": "Predictor",
                      "metadata": {"name": "ep-pred", "namespace": NS},
                      "spec": {"modelType": {"name": "sklearn"}, "storage": {"path": "m"}}})
    obj = await preds.reaches("ep-pred", ("Pending", "", "UpToDate", False))
    assert not mesh.set_calls("ep-pred") and "lastFailureInfo" not in obj["status"]

    # Deleting it while the runtime exists: the finalizer waits for a mesh to answer.
    await kube.delete(PREDICTOR, "ep-pred", NS)
    held = await eventually(lambda: kube.get(PREDICTOR, "ep-pred", NS), what="predictor held by finalizer")
    assert held["metadata"].get("deletionTimestamp")
    # Once no runtime Deployment is left there can be no mesh holding it: the CR goes.
    await kube.delete(SERVING_RUNTIME, "mlserver-1.x", NS)

    async def gone():
        return await kube.get(PREDICTOR, "ep-pred", NS) is None

    await eventually(gone, timeout=40, what="predictor released")
    await kube.delete(ENDPOINTS, "modelmesh-serving", NS)
