"""The validating admission webhook over HTTPS (real aiohttp TLS server, real client)."""

import ssl
import uuid

import aiohttp
import pytest

from modelmesh.controller.webhook import WEBHOOK_PATH, AdmissionWebhook
from modelmesh.observability.tls import self_signed_pair


@pytest.fixture(scope="module")
async def webhook(tmp_path_factory):
    cert, key = self_signed_pair(tmp_path_factory.mktemp("webhook"), "127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    hook = AdmissionWebhook("127.0.0.1", 0, ctx)
    await hook.start()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    yield f"https://127.0.0.1:{hook.port}{WEBHOOK_PATH}", client_ctx
    await hook.stop()


def review(annotations, spec=None, op="CREATE"):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": str(uuid.uuid4()), "operation": op, "name": "rt",
        "kind": {"group": "serving.kserve.io", "version": "v1alpha1", "kind": "ServingRuntime"},
        "object": {"metadata": {"name": "rt", "annotations": annotations},
                   "spec": {"multiModel": True, "containers": [{"name": "c"}], **(spec or {})}}}}


async def post(webhook, body):
    url, ctx = webhook
    async with aiohttp.ClientSession() as s, s.post(url, json=body, ssl=ctx) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("annotations,spec,needle", [
    ({"serving.kserve.io/autoscalerClass": "kpa"}, None, "must be hpa"),
    ({"serving.kserve.io/autoscalerClass": "hpa", "serving.kserve.io/metrics": "gpu"}, None, "cpu or memory"),
    ({"serving.kserve.io/autoscalerClass": "hpa", "serving.kserve.io/targetUtilizationPercentage": "0"}, None,
     "1-100"),
    ({"serving.kserve.io/autoscalerClass": "hpa", "serving.kserve.io/min-scale": "3",
      "serving.kserve.io/max-scale": "2"}, None, "must be >="),
    ({"serving.kserve.io/autoscalerClass": "hpa", "serving.kserve.io/min-scale": "0"}, None, ">= 1"),
    ({"serving.kserve.io/autoscalerClass": "hpa"}, {"replicas": 2}, "spec.replicas"),
])
async def test_rejects_bad_autoscaler_settings(webhook, annotations, spec, needle):
    body = review(annotations, spec)
    status, out = await post(webhook, body)
    assert status == 200 and out["kind"] == "AdmissionReview"
    assert out["response"]["uid"] == body["request"]["uid"]
    assert out["response"]["allowed"] is False and needle in out["response"]["status"]["message"]


async def test_allows_good_settings_and_other_operations(webhook):
    ok = {"serving.kserve.io/autoscalerClass": "hpa", "serving.kserve.io/min-scale": "1",
          "serving.kserve.io/max-scale": "3", "serving.kserve.io/metrics": "memory",
          "serving.kserve.io/targetUtilizationPercentage": "75"}
    assert (await post(webhook, review(ok)))[1]["response"]["allowed"] is True
    assert (await post(webhook, review({})))[1]["response"]["allowed"] is True
    assert (await post(webhook, review({"serving.kserve.io/autoscalerClass": "kpa"}, op="DELETE")))[1][
        "response"]["allowed"] is True


async def test_bad_body_is_400(webhook):
    url, ctx = webhook
    async with aiohttp.ClientSession() as s, s.post(url, data=b"not json", ssl=ctx) as r:
        assert r.status == 400 and "JSON" in (await r.json())["error"]
