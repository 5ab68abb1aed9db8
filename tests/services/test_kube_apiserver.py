"""The kube-apiserver fixture serves the real Kubernetes API: create a CRD, wait until it is
established, then create, read, patch status and list a custom object."""

import asyncio

from kubernetes_asyncio import client, config

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.fixture.modelmesh.dev"},
    "spec": {
        "group": "fixture.modelmesh.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}},
                    "status": {"type": "object", "properties": {"state": {"type": "string"}}},
                },
            }},
        }],
    },
}


async def test_crd_and_custom_object(kube_apiserver):
    api_client = await config.new_client_from_config(config_file=str(kube_apiserver.kubeconfig))
    async with api_client:
        ext = client.ApiextensionsV1Api(api_client)
        await ext.create_custom_resource_definition(CRD)
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            crd = await ext.read_custom_resource_definition(CRD["metadata"]["name"])
            conds = {c.type: c.status for c in (crd.status.conditions or [])}
            if conds.get("Established") == "True":
                break
            assert asyncio.get_running_loop().time() < deadline, f"CRD not established: {conds}"
            await asyncio.sleep(0.1)

        core = client.CoreV1Api(api_client)
        await core.create_namespace({"metadata": {"name": "fixture-ns"}})
        custom = client.CustomObjectsApi(api_client)
        args = ("fixture.modelmesh.dev", "v1", "fixture-ns", "widgets")
        await custom.create_namespaced_custom_object(
            *args, {"apiVersion": "fixture.modelmesh.dev/v1", "kind": "Widget",
                    "metadata": {"name": "w1"}, "spec": {"size": 3}})
        got = await custom.get_namespaced_custom_object(*args, "w1")
        assert got["spec"] == {"size": 3}

        # Status is a subresource: a merge-patch of /status changes status, not spec.
        await custom.patch_namespaced_custom_object_status(
            *args, "w1", {"status": {"state": "Loaded"}}, _content_type="application/merge-patch+json")
        got = await custom.get_namespaced_custom_object(*args, "w1")
        assert got["status"] == {"state": "Loaded"} and got["spec"] == {"size": 3}

        listed = await custom.list_namespaced_custom_object(*args)
        assert [i["metadata"]["name"] for i in listed["items"]] == ["w1"]
