"""`modelmesh runtime stop [--wait]`: the mesh container's preStop (`/opt/kserve/mmesh/stop.sh
wait` in the image, the reference's hook). Asks the mesh in this pod, over loopback, to start
its graceful shutdown; with --wait, returns once its models are handed off and it is about to
exit (see modelmesh.mesh.prestop)."""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

# Kubernetes ends the hook at the pod's grace period; the mesh bounds its own hold too.
CLIENT_TIMEOUT_S = 3600


def request_stop(port: int, wait: bool, host: str = "127.0.0.1") -> int:
    url = f"http://{host}:{port}/stop" + ("?wait=true" if wait else "")
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                    timeout=CLIENT_TIMEOUT_S) as resp:
            print(f"modelmesh runtime stop: {resp.read().decode().strip()}")
            return 0
    except urllib.error.HTTPError as e:
        print(f"modelmesh runtime stop: {url}: {e.code} {e.read().decode().strip()}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, ConnectionRefusedError):
            print(f"modelmesh runtime stop: no mesh listening on {host}:{port}: nothing to stop", file=sys.stderr)
            return 0
        if isinstance(reason, (ConnectionResetError, BrokenPipeError)) or "closed" in str(reason).lower():
            print("modelmesh runtime stop: the mesh exited", file=sys.stderr)
            return 0
        print(f"modelmesh runtime stop: {url}: {reason}", file=sys.stderr)
        return 1
