"""Kubernetes resource quantities (`50m`, `25Mi`, `1e3`), parsed exactly enough to compare.

The API server rejects a container whose request exceeds its limit; the injector checks first so
the pod author gets a message naming the annotation or value instead of an opaque pod error.
(The official client's `parse_quantity` would do, but importing `kubernetes` costs half a second
on every CLI call.)
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_QUANTITY = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$")
_SUFFIX = {
    "": Decimal(1), "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
    "Ki": Decimal(2**10), "Mi": Decimal(2**20), "Gi": Decimal(2**30), "Ti": Decimal(2**40),
    "Pi": Decimal(2**50), "Ei": Decimal(2**60),
}


def parse(value: object) -> Decimal:
    """Return the quantity's value; raise ValueError with the Kubernetes wording if malformed."""
    text = str(value).strip() if isinstance(value, (int, float, str)) and not isinstance(value, bool) else None
    match = _QUANTITY.match(text) if text else None
    if not match:
        raise ValueError("quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    number, suffix = match.group(1), match.group(2) or ""
    if suffix[:1] in ("e", "E") and abs(int(suffix[1:])) > 30:
        raise ValueError(f"quantity {text!r} is out of range")
    try:
        if suffix[:1] in ("e", "E"):
            return Decimal(number) * (Decimal(10) ** int(suffix[1:]))
        return Decimal(number) * _SUFFIX[suffix]
    except (InvalidOperation, ArithmeticError) as exc:
        raise ValueError(f"quantity {text!r} is out of range") from exc


def exceeds(request: object, limit: object) -> bool:
    """Whether a request is above its limit; a limit of 0 means none (as the reference treats it)."""
    return parse(limit) != 0 and parse(request) > parse(limit)
