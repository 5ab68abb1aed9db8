"""Cluster scope (labelled namespaces, ClusterServingRuntimes, etcd secret copies), leader
election on the Lease, and the app's probes and metrics, on the real kube-apiserver."""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from controller_helpers import ensure_namespace, eventually, runtime_doc, start_controller
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from modelmesh.apps.controller import ControllerApp
from modelmesh.config.controller import ControllerSettings
from modelmesh.config.settings import load_settings
from modelmesh.controller.kube import (
    CLUSTER_SERVING_RUNTIME,
    CONFIG_MAP,
    CRD,
    DEPLOYMENT,
    LEASE,
    NAMESPACE,
    SECRET,
    SERVICE,
    SERVICE_MONITOR,
    KubeApi,
)
from modelmesh.controller.leader import LEASE_NAME, LeaderElector

CTL_NS = "mm-system"
USER_NS = "team-a"
OTHER_NS = "not-enabled"
ETCD = {"endpoints": "http://etcd.mm-system:2379", "root_prefix": "modelmesh", "userid": "u", "password": "p"}


def etcd_secret(conn):
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "model-serving-etcd", "namespace": CTL_NS},
            "data": {"etcd_connection": base64.b64encode(json.dumps(conn).encode()).decode()}}


# The Prometheus Operator's ServiceMonitor kind, reduced to what the API server needs.
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"plural": "servicemonitors", "singular": "servicemonitor", "kind": "ServiceMonitor"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}


@pytest.fixture(scope="module")
async def cluster(kube, mesh_endpoint):
    try:
        await kube.create(CRD, SERVICE_MONITOR_CRD)
    except ApiException as e:
        if e.status != 409:
            raise
    await eventually(lambda: kube.has_resource("monitoring.coreos.com", "v1", "servicemonitors"),
                     what="ServiceMonitor kind served")
    await ensure_namespace(kube, CTL_NS)
    await ensure_namespace(kube, USER_NS, {"modelmesh-enabled": "true"})
    await ensure_namespace(kube, OTHER_NS)
    await kube.apply(etcd_secret(ETCD))
    await kube.apply(runtime_doc("mlserver-1.x", None, kind="ClusterServingRuntime"))
    controller = await start_controller(kube, CTL_NS, {"modelMeshEndpoint": mesh_endpoint}, namespace_scope=False)
    yield kube, controller
    await controller.stop()
    await kube.delete(CLUSTER_SERVING_RUNTIME, "mlserver-1.x")


async def test_cluster_runtime_deployed_in_served_namespaces_only(cluster):
    kube, _ = cluster
    for ns in (CTL_NS, USER_NS):
        dep = await eventually(lambda ns=ns: kube.get(DEPLOYMENT, "modelmesh-serving-mlserver-1.x", ns),
                               what=f"deployment in {ns}")
        assert dep["metadata"]["ownerReferences"][0]["kind"] == "ClusterServingRuntime"
    assert await kube.get(DEPLOYMENT, "modelmesh-serving-mlserver-1.x", OTHER_NS) is None

    # Labelling a namespace brings it into scope.
    await kube.merge_patch(NAMESPACE, OTHER_NS, {"metadata": {"labels": {"modelmesh-enabled": "true"}}})
    await eventually(lambda: kube.get(DEPLOYMENT, "modelmesh-serving-mlserver-1.x", OTHER_NS),
                     what="deployment after labelling")


async def test_service_monitor_when_the_kind_exists(cluster):
    kube, _ = cluster
    sm = await eventually(lambda: kube.get(SERVICE_MONITOR, "modelmesh-metrics-monitor", USER_NS),
                          what="ServiceMonitor")
    assert sm["spec"]["selector"] == {"matchLabels": {"modelmesh-service": "modelmesh-serving"}}
    assert sm["spec"]["endpoints"][0]["port"] == "prometheus"


async def test_etcd_secret_propagated_with_namespaced_prefix(cluster):
    kube, _ = cluster

    async def copy_prefix():
        s = await kube.get(SECRET, "model-serving-etcd", USER_NS)
        return s and json.loads(base64.b64decode(s["data"]["etcd_connection"]))

    conn = await eventually(copy_prefix, what="etcd secret copy")
    assert conn == {**ETCD, "root_prefix": "modelmesh/mm_ns/team-a"}
    # A change of the source secret reaches the copies.
    await kube.apply(etcd_secret({**ETCD, "endpoints": "http://etcd2:2379"}))

    async def updated():
        c = await copy_prefix()
        return c and c["endpoints"] == "http://etcd2:2379" and c["root_prefix"] == "modelmesh/mm_ns/team-a"

    await eventually(updated, what="copy follows the source")
    assert await kube.get(SECRET, "model-serving-etcd", CTL_NS)  # the source itself is untouched
    source = await kube.get(SECRET, "model-serving-etcd", CTL_NS)
    src = json.loads(base64.b64decode(source["data"]["etcd_connection"]))
    assert src["root_prefix"] == "modelmesh"


async def test_namespace_leaving_scope_is_cleaned_up(cluster):
    kube, _ = cluster
    ns = "team-leaving"
    await ensure_namespace(kube, ns, {"modelmesh-enabled": "true"})
    made = [(DEPLOYMENT, "modelmesh-serving-mlserver-1.x"), (CONFIG_MAP, "tc-config"),
            (SERVICE, "modelmesh-serving"), (SECRET, "model-serving-etcd")]
    for kind, name in made:
        await eventually(lambda kind=kind, name=name: kube.get(kind, name, ns), what=f"{kind.kind} {name} made")
    # Something of the user's in the same namespace, which must stay.
    await kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "users-own", "namespace": ns},
                      "data": {"k": "v"}})
    await kube.merge_patch(NAMESPACE, ns, {"metadata": {"labels": {"modelmesh-enabled": None}}})

    async def all_gone():
        return all([await kube.get(kind, name, ns) is None for kind, name in made])

    await eventually(all_gone, timeout=30, what="controller objects removed")
    assert await kube.get(CONFIG_MAP, "users-own", ns) is not None


async def test_leader_election_one_holder_at_a_time(kube):
    await ensure_namespace(kube, "lease-ns")
    a = LeaderElector(kube, "lease-ns", "replica-a", lease_s=2, renew_s=0.3, retry_s=0.1)
    b = LeaderElector(kube, "lease-ns", "replica-b", lease_s=2, renew_s=0.3, retry_s=0.1)
    await a.acquire()
    b_task = asyncio.create_task(b.acquire())
    lease = await kube.get(LEASE, LEASE_NAME, "lease-ns")
    assert lease["spec"]["holderIdentity"] == "replica-a"
    done, _ = await asyncio.wait({b_task}, timeout=3)  # a keeps renewing: b must not get it
    assert not done, "second replica took a held lease"
    await a.release()
    await asyncio.wait_for(b_task, 10)
    lease = await kube.get(LEASE, LEASE_NAME, "lease-ns")
    assert lease["spec"]["holderIdentity"] == "replica-b" and lease["spec"]["leaseTransitions"] >= 1
    await b.release()


async def test_app_probes_metrics_and_lease(kube_apiserver, kube, mesh_endpoint):
    ns = "app-ns"
    await ensure_namespace(kube, ns)
    settings = load_settings(ControllerSettings, {
        "KUBECONFIG": str(kube_apiserver.kubeconfig), "NAMESPACE": ns, "NAMESPACE_SCOPE": "true",
        "METRICS_PORT": "0", "HEALTH_PROBE_PORT": "0", "POD_NAME": "ctl-0", "WEBHOOK_CERT_DIR": "/nonexistent",
        "MESH_TABLE_WATCH": "false"})
    app = ControllerApp(settings, host="127.0.0.1")
    await app.start()
    try:
        async with aiohttp.ClientSession() as s:
            probe = f"http://127.0.0.1:{app.probe_endpoint.port}"
            async with s.get(f"{probe}/healthz") as r:
                assert r.status == 200
            async with s.get(f"{probe}/readyz") as r:
                assert r.status == 200
            lease = await eventually(lambda: kube.get(LEASE, LEASE_NAME, ns), what="lease taken")
            assert lease["spec"]["holderIdentity"] == "ctl-0"
            await eventually(lambda: app.controller and app.controller._started, what="controller started")
            async with s.get(f"http://127.0.0.1:{app.metrics_endpoint.port}/metrics") as r:
                text = await r.text()
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"modelmesh_controller_reconcile", "modelmesh_controller_config_valid"} <= names
    finally:
        await app.stop()
    assert isinstance(app.controller.api, KubeApi)
