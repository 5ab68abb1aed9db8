"""storageUri -> (storage parameters, path inside the storage), as KServe ModelMesh maps them."""

from __future__ import annotations

from urllib.parse import urlsplit

from modelmesh.modelspec.errors import InvalidSpec

_AZURE_SUFFIX = ".blob.core.windows.net"


def _clean_path(path: str, uri: str) -> str:
    path = path.lstrip("/")
    if any(part == ".." for part in path.split("/")):
        # A model path may never climb out of its storage root (nor the model directory later).
        raise InvalidSpec.invalid(f"storage path may not contain '..': {uri}")
    return path


def parse_storage_uri(uri: str) -> tuple[dict[str, str], str]:
    """Map `s3://B/p`, `gs://B/p`, `pvc://claim/p`, Azure blob URLs and other http(s) URLs.

    Returns the storage parameters (type and location) and the path of the model.
    """
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in ("s3", "gs", "pvc"):
        if not parts.netloc:
            raise InvalidSpec.invalid(f"storageUri has no {'claim' if scheme == 'pvc' else 'bucket'}: {uri}")
        path = _clean_path(parts.path, uri)
        if scheme == "s3":
            return {"type": "s3", "bucket": parts.netloc}, path
        if scheme == "gs":
            return {"type": "gcs", "bucket": parts.netloc}, path
        return {"type": "pvc", "name": parts.netloc}, path
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise InvalidSpec.invalid(f"storageUri has no host: {uri}")
        host = parts.hostname
        if scheme == "https" and host.endswith(_AZURE_SUFFIX):
            container, _, rest = parts.path.lstrip("/").partition("/")
            if not container:
                raise InvalidSpec.invalid(f"Azure storageUri has no container: {uri}")
            return (
                {"type": "azure", "account_name": host[: -len(_AZURE_SUFFIX)], "container": container},
                _clean_path(rest, uri),
            )
        path = _clean_path(parts.path, uri)
        if parts.query:
            path = f"{path}?{parts.query}"
        return {"type": "http", "url": f"{scheme}://{parts.netloc}"}, path
    raise InvalidSpec.invalid(
        f"unsupported storageUri scheme {parts.scheme!r} in {uri!r} (expected s3, gs, pvc, http or https)"
    )
