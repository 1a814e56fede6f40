"""Request bodies parsed as JSON (RFC 8259) strictly, every refusal a `MalformedJsonError` (400).

Python's `json.loads` is lenient where the rest of the system is not, and raises where callers
expect a decode error:
- `NaN`, `Infinity` and numbers too large for a double (`1e999` becomes `inf`) are not JSON; once
  parsed, they would be written out again as `NaN`/`Infinity`, which no platform accepts;
- an integer of more than 4,300 digits raises a bare `ValueError` (CPython's limit on int/str
  conversion, a guard against quadratic work);
- nesting past the interpreter's stack raises `RecursionError`;
- a lone UTF-16 surrogate escape (`"\\ud800"`) parses to a `str` that cannot be encoded as
  UTF-8, so storing or forwarding it fails later, far from the request.
"""

from __future__ import annotations

import json
import math
import re
import sys
from typing import Any

from success_metrics.errors import MalformedJsonError

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _constant(name: str) -> Any:
    raise MalformedJsonError(f"the body is not valid JSON: {name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise MalformedJsonError(f"the body is not valid JSON: {shown} is too large for a number")
    return value


def _is_text(value: Any) -> bool:
    """No string (key or value) anywhere in `value` holds a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def loads(raw: bytes) -> Any:
    """`raw` (UTF-8) as JSON, or a `MalformedJsonError` saying what is wrong with it."""
    try:
        value = json.loads(raw, parse_constant=_constant, parse_float=_float)
    except RecursionError as exc:
        raise MalformedJsonError("the body nests too deeply") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedJsonError(f"the body is not valid JSON: {exc}") from exc
    except ValueError as exc:  # int/str conversion limit
        raise MalformedJsonError(
            f"the body is not valid JSON: a number has more than {_digit_limit():,} digits"
        ) from exc
    if _SURROGATE_ESCAPE.search(raw) and not _is_text(value):
        raise MalformedJsonError(
            "the body is not valid JSON text: it escapes a lone UTF-16 surrogate (\\ud800-\\udfff)"
        )
    return value


def _digit_limit() -> int:

    return sys.get_int_max_str_digits() or 4300
