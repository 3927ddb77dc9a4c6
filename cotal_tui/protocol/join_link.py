"""Join links (§4.4): ``cotal://[token@|user:pass@]host[:port]/space[?channel=a,b]``.

The reference parses a link with the WHATWG URL parser after swapping ``cotal://`` for
``http://`` (``cotals://`` for ``https://``), then ``decodeURIComponent`` on the parts. We parse
with ada (``ada-url``), the WHATWG parser Node itself uses, so host lower-casing, IDNA, IPv4/IPv6
normalization, dot segments, tab/newline stripping and the scheme-default port (``cotal://h:80``
gives 4222) come out as the reference's do. Errors keep the reference's messages: ``Invalid URL``
from the parser, ``URI malformed`` from ``decodeURIComponent``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_to_bytes

from ada_url import URL

from cotal_tui.protocol.errors import InvalidJoinLink, InvalidUrl, UriMalformed
from cotal_tui.protocol.jsstr import js_number_str, js_string, js_trim
from cotal_tui.protocol.names import DEFAULT_PORT

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
    """``decodeURIComponent``: each run of ``%XX`` must be strict UTF-8; other text is kept as is.

    Anything else (a stray ``%``, a truncated or invalid sequence) is ``URI malformed``.
    """
    if "%" not in s:
        return s
    out: list[str] = []
    run = bytearray()
    i = 0
    while i < len(s):
        if s[i] == "%":
            pair = s[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in "0123456789abcdefABCDEF" for c in pair):
                raise UriMalformed()
            run.append(int(pair, 16))
            i += 3
            continue
        if run:
            out.append(_strict_utf8(run))
            run.clear()
        out.append(s[i])
        i += 1
    if run:
        out.append(_strict_utf8(run))
    return "".join(out)


def _strict_utf8(data: bytearray) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UriMalformed() from None


def encode_uri_component(s: str) -> str:
    """``encodeURIComponent``; a lone surrogate is ``URI malformed`` as in JS."""
    try:
        return quote(s, safe=_ENCODE_URI_COMPONENT_SAFE)
    except UnicodeEncodeError:
        raise UriMalformed() from None


def _usv(s: str) -> str:
    """JS USVString conversion: a lone surrogate becomes U+FFFD before URL parsing."""
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def _form_decode(s: str) -> str:
    """Form-urlencoded decoding: ``+`` is a space, bad UTF-8 becomes U+FFFD."""
    return unquote_to_bytes(s.replace("+", " ")).decode("utf-8", "replace")


def _first_param(search: str, *names: str) -> str | None:
    """``params.get(a) ?? params.get(b)``: the first value of the first name present."""
    query = search[1:] if search.startswith("?") else search
    pairs = [chunk.partition("=") for chunk in query.split("&") if chunk]
    decoded = [(_form_decode(name), _form_decode(value)) for name, _, value in pairs]
    for wanted in names:
        for name, value in decoded:
            if name == wanted:
                return value
    return None


def _check_punycode_labels(hostname: str) -> None:
    """An ``xn--`` label must be valid punycode (Node refuses the URL otherwise)."""
    for label in hostname.split("."):
        if label[:4].lower() == "xn--":
            try:
                label[4:].encode("ascii").decode("punycode")
            except (UnicodeError, ValueError):
                raise InvalidUrl() from None


def parse_join_link(link: str) -> JoinLink:
    """Parse a join link into servers, space, channels and credentials.

    Raises :class:`InvalidJoinLink` (``not a Cotal link`` / ``has no space``), :class:`InvalidUrl`
    or :class:`UriMalformed`, with the reference's messages.
    """
    tls = link.startswith("cotals://")
    if not tls and not link.startswith("cotal://"):
        raise InvalidJoinLink(f"not a Cotal link (expected cotal:// or cotals://): {link}")
    rest = link[len("cotals://") if tls else len("cotal://") :]
    try:
        url = URL(("https://" if tls else "http://") + _usv(rest))
    except ValueError:
        raise InvalidUrl() from None
    if not url.hostname:
        raise InvalidJoinLink(f"Cotal link has no host: {link}")
    _check_punycode_labels(url.hostname)
    space = decode_uri_component(url.pathname.lstrip("/").split("/")[0])
    if not space:
        raise InvalidJoinLink(f"Cotal link has no space (cotal://host/<space>): {link}")

    raw_channels = _first_param(url.search, "channels", "channel")
    channels: tuple[str, ...] | None = None
    if raw_channels:  # present but only commas gives [] (as the reference does)
        channels = tuple(c for c in (js_trim(x) for x in raw_channels.split(",")) if c)

    user = decode_uri_component(url.username) if url.username else None
    password = decode_uri_component(url.password) if url.password else None
    return JoinLink(
        servers=f"nats://{url.hostname}:{url.port or DEFAULT_PORT}",
        space=space,
        tls=tls,
        channels=channels,
        token=user if user and not password else None,
        user=user if password else None,
        password=password or None,
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
