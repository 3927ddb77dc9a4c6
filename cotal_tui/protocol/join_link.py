"""Join links (§4.4): ``cotal://[token@|user:pass@]host[:port]/space[?channel=a,b]``.

The reference parses a link with the WHATWG URL parser after swapping ``cotal:`` for ``http:``
(``cotals:`` for ``https:``), then ``decodeURIComponent`` on the parts. This module follows the
parts of that behaviour the vectors pin down: host lower-casing, IPv4/IPv6 normalization,
dropping the scheme-default port (so ``cotal://h:80`` gives port 4222), tab/newline stripping,
dot-segment resolution, first-value-wins query parameters, and the two error messages
``Invalid URL`` and ``URI malformed``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from cotal_tui.protocol.errors import InvalidJoinLink, InvalidUrl, UriMalformed
from cotal_tui.protocol.jsstr import js_number_str, js_string, js_trim
from cotal_tui.protocol.names import DEFAULT_PORT

_LINK = re.compile(r"^cotals?://")
_FORBIDDEN_HOST = set(" #%/:<>?@[\\]^|\x7f") | {chr(c) for c in range(0x20)}
_ENCODE_URI_COMPONENT_SAFE = "-_.!~*'()"


@dataclass(frozen=True)
class JoinLink:
    servers: str
    space: str
    tls: bool = False
    channels: tuple[str, ...] | None = None
    token: str | None = None
    user: str | None = None
    password: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The reference's object: absent keys for undefined values, ``pass`` for the password."""
        out: dict[str, Any] = {"servers": self.servers, "space": self.space}
        if self.channels is not None:
            out["channels"] = list(self.channels)
        out["tls"] = self.tls
        for key, value in (("token", self.token), ("user", self.user), ("pass", self.password)):
            if value is not None:
                out[key] = value
        return out


def decode_uri_component(s: str) -> str:
    """``decodeURIComponent``: strict ``%XX`` UTF-8 decoding; anything else is ``URI malformed``."""
    if "%" not in s:
        return s
    out = bytearray()
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "%":
            pair = s[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise UriMalformed()
            out.append(int(pair, 16))
            i += 3
        else:
            out.extend(ch.encode("utf-8", "surrogatepass"))
            i += 1
    try:
        return out.decode("utf-8")
    except UnicodeDecodeError:
        raise UriMalformed() from None


def encode_uri_component(s: str) -> str:
    return quote(s, safe=_ENCODE_URI_COMPONENT_SAFE)


def _search_params(query: str) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` parsing, as ``URLSearchParams`` does it."""
    pairs: list[tuple[str, str]] = []
    for chunk in query.split("&"):
        if not chunk:
            continue
        name, _, value = chunk.partition("=")
        pairs.append((_form_decode(name), _form_decode(value)))
    return pairs


def _form_decode(s: str) -> str:
    return unquote_to_bytes(s.replace("+", " ")).decode("utf-8", "replace")


def _parse_ipv4_number(part: str) -> int | None:
    if part == "":
        return None
    base = 10
    if part[:2] in ("0x", "0X"):
        part, base = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, base = part[1:], 8
    if part == "":
        return 0
    digits = {10: "0123456789", 16: "0123456789abcdefABCDEF", 8: "01234567"}[base]
    if not all(c in digits for c in part):
        return None
    return int(part, base)


def _ends_in_number(host: str) -> bool:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    last = parts[-1]
    if last and all(c in "0123456789" for c in last):
        return True
    return _parse_ipv4_number(last) is not None and last[:2] in ("0x", "0X")


def _parse_ipv4(host: str) -> str:
    parts = host.split(".")
    if parts[-1] == "" and len(parts) > 1:
        parts = parts[:-1]
    if len(parts) > 4:
        raise InvalidUrl()
    numbers = [_parse_ipv4_number(p) for p in parts]
    if any(n is None for n in numbers):
        raise InvalidUrl()
    nums: list[int] = [n for n in numbers if n is not None]
    if any(n > 255 for n in nums[:-1]) or nums[-1] >= 256 ** (5 - len(nums)):
        raise InvalidUrl()
    value = nums[-1]
    for i, n in enumerate(nums[:-1]):
        value += n * 256 ** (3 - i)
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def _parse_host(raw: str) -> str:
    if raw.startswith("["):
        if not raw.endswith("]"):
            raise InvalidUrl()
        try:
            addr = ipaddress.IPv6Address(raw[1:-1])
        except ValueError:
            raise InvalidUrl() from None
        return f"[{addr.compressed}]"
    if raw == "":
        raise InvalidUrl()
    try:
        host = decode_uri_component(raw)
    except UriMalformed:
        raise InvalidUrl() from None
    if any(ord(c) > 0x7F for c in host):
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise InvalidUrl() from None
    host = host.lower()
    if not host or any(c in _FORBIDDEN_HOST for c in host):
        raise InvalidUrl()
    if _ends_in_number(host):
        return _parse_ipv4(host)
    return host


def _resolve_path(path: str) -> list[str]:
    """WHATWG path segments of a special URL: ``\\`` is ``/``, dot segments resolved."""
    segments: list[str] = []
    raw_segments = path.replace("\\", "/").split("/")[1:] if path else []
    for i, seg in enumerate(raw_segments):
        last = i == len(raw_segments) - 1
        low = seg.lower()
        if low in ("..", ".%2e", "%2e.", "%2e%2e"):
            if segments:
                segments.pop()
            if last:
                segments.append("")
        elif low in (".", "%2e"):
            if last:
                segments.append("")
        else:
            segments.append(seg)
    return segments


def parse_join_link(link: str) -> JoinLink:
    """Parse a join link into servers, space, channels and credentials.

    Raises :class:`InvalidJoinLink` (``not a Cotal link`` / ``has no space``), :class:`InvalidUrl`
    or :class:`UriMalformed`, with the reference's messages.
    """
    if not _LINK.match(link):
        raise InvalidJoinLink(f"not a Cotal link (expected cotal:// or cotals://): {link}")
    tls = link.startswith("cotals://")
    default_port = "443" if tls else "80"
    rest = link[len("cotals://") if tls else len("cotal://") :]
    rest = rest.rstrip("".join(chr(c) for c in range(0x21)))
    rest = rest.replace("\t", "").replace("\n", "").replace("\r", "")
    rest = rest.lstrip("/\\")
    rest = rest.split("#", 1)[0]
    end = len(rest)
    for sep in ("/", "\\", "?"):
        idx = rest.find(sep)
        if idx != -1:
            end = min(end, idx)
    authority, tail = rest[:end], rest[end:]
    path, _, query = tail.partition("?")

    userinfo, at, hostport = authority.rpartition("@")
    if not at:
        userinfo, hostport = "", authority
    username, colon, password = userinfo.partition(":")
    if at and not hostport:
        raise InvalidUrl()

    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            raise InvalidUrl()
        raw_host, after = hostport[: close + 1], hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise InvalidUrl()
        port = after[1:]
        has_port = bool(after)
    else:
        raw_host, has_colon, port = hostport.partition(":")
        has_port = bool(has_colon)
    host = _parse_host(raw_host)
    if has_port and port:
        if not port.isascii() or not port.isdigit():
            raise InvalidUrl()
        if int(port) > 65535:
            raise InvalidUrl()
        port = str(int(port))
        if port == default_port:
            port = ""

    segments = _resolve_path(path or "/")
    pathname = "/" + "/".join(segments)
    first = pathname.lstrip("/").split("/")[0]
    space = decode_uri_component(first)
    if not space:
        raise InvalidJoinLink(f"Cotal link has no space (cotal://host/<space>): {link}")

    params = _search_params(query)
    raw_channels = next((v for k, v in params if k == "channels"), None)
    if raw_channels is None:
        raw_channels = next((v for k, v in params if k == "channel"), None)
    channels: tuple[str, ...] | None = None
    if raw_channels:  # present but only commas gives [] (as the reference does)
        channels = tuple(c for c in (js_trim(x) for x in raw_channels.split(",")) if c)

    token = user = pw = None
    if password:
        pw = decode_uri_component(password)
        user = decode_uri_component(username) if username else None
    elif username:
        token = decode_uri_component(username)
    del colon
    return JoinLink(
        servers=f"nats://{host}:{port or DEFAULT_PORT}",
        space=space,
        tls=tls,
        channels=channels,
        token=token,
        user=user,
        password=pw,
    )


def format_join_link(
    host: str,
    space: str,
    *,
    port: int | float | None = None,
    token: str | None = None,
    tls: bool = False,
    channels: list[str] | tuple[str, ...] | None = None,
) -> str:
    """The link an operator shares; port 0/None and an empty token or channel list are omitted."""
    scheme = "cotals" if tls else "cotal"
    auth = f"{encode_uri_component(js_string(token))}@" if token else ""
    port_part = f":{js_number_str(port)}" if port else ""
    query = f"?channel={','.join(js_string(c) for c in channels)}" if channels else ""
    host_part = js_string(host)
    return (
        f"{scheme}://{auth}{host_part}{port_part}/{encode_uri_component(js_string(space))}{query}"
    )
