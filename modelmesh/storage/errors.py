"""Pull errors: the message is what the user sees in the model's failure status."""

from __future__ import annotations


class PullError(Exception):
    """Storage failure (unreachable, 404, empty listing, denied): the load was attempted."""


class PullInputError(PullError, ValueError):
    """Bad model key, storage config or path: nothing was attempted (INVALID_ARGUMENT)."""


class TransientError(PullError):
    """A failure worth retrying (5xx, timeout, connection reset); raised by providers."""
