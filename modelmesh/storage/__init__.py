"""Model storage: pulls model files from object stores, http(s) or PVCs into a local dir.

`Puller` (puller.py) is the entry point; providers/ hold one module per storage type.
"""

from modelmesh.storage.errors import PullError, PullInputError
from modelmesh.storage.puller import PulledModel, Puller

__all__ = ["PullError", "PullInputError", "PulledModel", "Puller"]
