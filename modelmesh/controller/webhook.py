"""Validating admission webhook for (Cluster)ServingRuntimes, over TLS (aiohttp).

Path as the reference's: /validate-serving-modelmesh-io-v1alpha1-servingruntime.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiohttp import web

from modelmesh.controller.runtime_spec import validate_autoscaler
from modelmesh.observability.logging import get_logger

log = get_logger("modelmesh.controller.webhook")

WEBHOOK_PATH = "/validate-serving-modelmesh-io-v1alpha1-servingruntime"


def review(request: dict[str, Any]) -> dict[str, Any]:
    """The AdmissionReview response for an AdmissionReview request."""
    req = request.get("request") or {}
    uid = req.get("uid", "")
    obj = req.get("object") or {}
    errors: list[str] = []
    if req.get("operation") in ("CREATE", "UPDATE") and (obj.get("spec") or {}).get("multiModel"):
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        errors = validate_autoscaler(annotations, obj.get("spec") or {})
    response: dict[str, Any] = {"uid": uid, "allowed": not errors}
    if errors:
        response["status"] = {"code": 403, "reason": "Forbidden", "message": "; ".join(errors)}
    return {"apiVersion": request.get("apiVersion", "admission.k8s.io/v1"), "kind": "AdmissionReview",
            "response": response}


class AdmissionWebhook:
    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self.app = web.Application(client_max_size=4 * 1024 * 1024)
        self.app.router.add_post(WEBHOOK_PATH, self._handle)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(body, dict) or not isinstance(body.get("request"), dict):
            return web.json_response({"error": "expected an AdmissionReview with a request"}, status=400)
        out = review(body)
        if not out["response"]["allowed"]:
            log.info("runtime rejected", name=(body["request"].get("name")),
                     reason=out["response"]["status"]["message"])
        return web.json_response(out)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
