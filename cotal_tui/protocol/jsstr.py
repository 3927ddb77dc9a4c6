"""JavaScript string and number semantics the reference's wire rules depend on.

The reference is TypeScript: its strings are UTF-16, ``trim()`` strips the ECMAScript
white-space set (not Python's), and numbers are IEEE doubles. Every rule that counts,
trims or prints goes through these helpers so Python and the reference agree byte for byte.
"""

from __future__ import annotations

import math

# ECMAScript WhiteSpace + LineTerminator: what String.prototype.trim() strips.
JS_WHITESPACE = (
    "\u0009\u000a\u000b\u000c\u000d\u0020\u00a0\u1680"
    "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(s: str) -> str:
    """``String.prototype.trim()`` (``str.strip()`` differs on U+001C-1F, U+0085, U+FEFF)."""
    return s.strip(JS_WHITESPACE)


def utf16_units(s: str) -> list[int]:
    """The UTF-16 code units of ``s`` (an astral character gives two; a lone surrogate one)."""
    data = s.encode("utf-16-le", "surrogatepass")
    return [data[i] | (data[i + 1] << 8) for i in range(0, len(data), 2)]


def utf16_len(s: str) -> int:
    """``s.length`` in JavaScript: the number of UTF-16 code units."""
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def js_number_str(n: int | float) -> str:
    """``String(n)`` for a JS number: shortest round-trip digits, ECMAScript layout.

    A Python int beyond 2**53 is first rounded to a double, as JSON.parse would have done.
    """
    if isinstance(n, bool):
        return "true" if n else "false"
    if isinstance(n, int) and abs(n) <= 2**53:
        return str(n)
    x = float(n)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, frac = mantissa.partition(".")
    digits = (whole + frac).lstrip("0")
    # value = 0.<digits> x 10**point
    point = len(whole.lstrip("0")) if whole.strip("0") else -(len(frac) - len(frac.lstrip("0")))
    point += int(exp or 0)
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    if k <= point <= 21:
        body = digits + "0" * (point - k)
    elif 0 < point <= 21:
        body = f"{digits[:point]}.{digits[point:]}"
    elif -6 < point <= 0:
        body = "0." + "0" * (-point) + digits
    else:
        e = point - 1
        body = (
            digits[0] + (f".{digits[1:]}" if k > 1 else "") + f"e{'+' if e >= 0 else '-'}{abs(e)}"
        )
    return sign + body


class _Absent:
    """A property that is not there at all (JS ``undefined``), as opposed to ``null`` (None)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT = _Absent()


def js_string(value: object) -> str:
    """``String(value)`` for a decoded JSON value."""
    if value is None:
        return "null"
    if value is ABSENT:
        return "undefined"
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return js_number_str(value)
    if isinstance(value, list | tuple):
        return ",".join("" if v is None or v is ABSENT else js_string(v) for v in value)
    return "[object Object]"


def js_to_number(value: object) -> float:
    """``Number(value)`` for a decoded JSON value (``NaN`` for what JS cannot convert)."""
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        text = js_trim(value)
        if text == "":
            return 0.0
        prefixed = {"0x": 16, "0o": 8, "0b": 2}.get(text[:2].lower())
        if prefixed:
            try:
                return float(int(text[2:], prefixed)) if "_" not in text else math.nan
            except ValueError:
                return math.nan
        if text in ("Infinity", "+Infinity", "-Infinity"):
            return -math.inf if text.startswith("-") else math.inf
        if "_" in text or any(c.isalpha() and c not in "eE" for c in text):
            return math.nan
        try:
            return float(text)
        except ValueError:
            return math.nan
    return math.nan


def js_json_string(s: str) -> str:
    """``JSON.stringify(s)`` for a string: non-ASCII kept, lone surrogates as ``\\udXXX``."""
    s = s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    out = ['"']
    for ch in s:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
            out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
