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
    """``String(n)`` for a JS number, for the values a wire name can hold."""
    if isinstance(n, bool):
        return "true" if n else "false"
    if isinstance(n, int):
        return str(n)
    if math.isnan(n):
        return "NaN"
    if math.isinf(n):
        return "Infinity" if n > 0 else "-Infinity"
    if n.is_integer() and abs(n) < 1e21:
        return str(int(n))
    text = repr(n)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}e{sign}{exp.lstrip('+-').lstrip('0') or '0'}"
    return text


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
