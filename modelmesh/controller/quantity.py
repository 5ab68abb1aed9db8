"""Kubernetes resource quantities: parsing (runtime memory limits) and the canonical strings
the apiserver expects. A ServingRuntime may hold a quantity as a YAML number (the shipped
ovms-1.x runtime has `cpu: 5`); a Deployment sent with a number there is rejected by
server-side apply, so every quantity we send is a string."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_CEILING, Decimal, InvalidOperation
from typing import Any

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SUFFIX = {**{k: Decimal(v) for k, v in _BINARY.items()},
           **{k: Decimal(10) ** e for k, e in _DECIMAL.items() if k}}
_NANO = Decimal("1e-9")


def parse_quantity(raw: str | int | float) -> Decimal:
    if isinstance(raw, bool):
        raise ValueError(f"invalid quantity {raw!r}")
    text = str(raw).strip()
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if text.endswith(suffix):
            number, factor = text[: -len(suffix)], _SUFFIX[suffix]
            break
    else:
        number, factor = text, Decimal(1)
    try:
        value = Decimal(number) * factor
    except InvalidOperation:
        raise ValueError(f"invalid quantity {raw!r}") from None
    if not value.is_finite() or not number:
        raise ValueError(f"invalid quantity {raw!r}")
    return value


def decimal_si(value: Decimal) -> str:
    """The apiserver's canonical decimal form: 5 -> "5", 0.5 -> "500m", 5000 -> "5k"
    (rounded up to nano units, as Kubernetes does)."""
    value = (value / _NANO).to_integral_value(ROUND_CEILING) * _NANO
    if value == 0:
        return "0"
    for suffix, exp in sorted(_DECIMAL.items(), key=lambda kv: -kv[1]):
        mantissa = value.scaleb(-exp)
        if mantissa == mantissa.to_integral_value():
            return f"{int(mantissa)}{suffix}"
    raise AssertionError("unreachable: nano units are integral")


def binary_si(n_bytes: int) -> str:
    """Bytes in the largest binary unit that divides them exactly: 1610612736 -> "1536Mi"."""
    for suffix, factor in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
        if n_bytes and n_bytes % factor == 0:
            return f"{n_bytes // factor}{suffix}"
    return str(n_bytes)


def quantity_string(raw: Any) -> str:
    """A quantity as the string to send: numbers in canonical form, strings as written (the
    apiserver canonicalises those itself); invalid ones raise ValueError."""
    if isinstance(raw, str):
        parse_quantity(raw)
        return raw.strip()
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (isinstance(raw, float) and
                                                                       not math.isfinite(raw)):
        raise ValueError(f"invalid quantity {raw!r}")
    return decimal_si(Decimal(str(raw)))


def normalized_resources(resources: Mapping[str, Any] | None) -> dict[str, Any]:
    """A container's `resources` with every limit and request as a quantity string."""
    out = dict(resources or {})
    for key in ("limits", "requests"):
        if isinstance(out.get(key), Mapping):
            out[key] = {name: quantity_string(v) for name, v in out[key].items()}
    return out
