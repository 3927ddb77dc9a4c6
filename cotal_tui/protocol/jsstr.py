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
