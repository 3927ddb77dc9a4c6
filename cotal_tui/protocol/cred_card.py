"""What an agent's user JWT says about the agent: its card and its channel ACL (pure).

The reference names an agent's user JWT after its profile (``name: "agent"``) and keeps the
agent's own name, role and boot channels in its spawn config, so a bare ``.creds`` file says
nothing about who the agent is. ``cotal-tui mint`` therefore also writes them as NATS user-JWT
tags (``nats.tags``, a standard claim every NATS tool keeps and the server ignores):

- ``cotal-name:<name>``, ``cotal-role:<role>`` (absent without a role);
- ``cotal-subscribe:<channel>`` once per boot channel (``--subscribe``).

The values are percent-encoded (``urllib.parse.quote`` with no safe characters), so any name
survives any tool that lowercases or splits tags; decoding takes the text after the first ``:``.

The ACL an agent holds is read from the JWT's permissions, which is what the broker enforces:
``read`` = the channels of ``sub.allow`` ``cotal.<space>.chat.*.<channel>`` (the minted
``allowSubscribe``), ``post`` = the channels of ``pub.allow`` ``cotal.<space>.chat.<id>.<channel>``
(``allowPublish``). An empty list on a restricted JWT means none; an unrestricted JWT (no pub and
no sub lists: manager, open mode) reads and posts everywhere (``None``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from cotal_tui.protocol.channels import channel_in_allow
from cotal_tui.protocol.subjects import space_prefix

TAG_NAME = "cotal-name"
TAG_ROLE = "cotal-role"
TAG_SUBSCRIBE = "cotal-subscribe"


def card_tags(name: str | None, role: str | None, subscribe: Sequence[str]) -> list[str]:
    """The tags ``mint`` adds to an agent's JWT (see module doc)."""
    tags = []
    if name:
        tags.append(f"{TAG_NAME}:{quote(name, safe='')}")
    if role:
        tags.append(f"{TAG_ROLE}:{quote(role, safe='')}")
    tags += [f"{TAG_SUBSCRIBE}:{quote(ch, safe='')}" for ch in subscribe]
    return tags


@dataclass(frozen=True)
class CredCard:
    """Who a user JWT says it is and what it may read and post.

    ``read``/``post`` are None when the JWT is unrestricted (it may do anything).
    """

    id: str
    profile: str
    name: str | None = None
    role: str | None = None
    boot: tuple[str, ...] = ()
    read: tuple[str, ...] | None = None
    post: tuple[str, ...] | None = None

    @property
    def is_agent(self) -> bool:
        """A participant: an agent, or the project's own ``operator`` (an agent on every
        channel plus read-only monitoring, protocol/permissions.py)."""
        return self.profile in ("agent", "operator")

    def may_read(self, channel: str) -> bool:
        return self.read is None or channel_in_allow(self.read, channel)

    def may_post(self, channel: str) -> bool:
        return self.post is None or channel in self.post

    def acl_json(self) -> dict[str, Any]:
        return {
            "read": None if self.read is None else list(self.read),
            "post": None if self.post is None else list(self.post),
        }


def _tag_values(tags: Sequence[Any], key: str) -> list[str]:
    out = []
    for tag in tags:
        if isinstance(tag, str) and tag.lower().startswith(f"{key}:"):
            out.append(unquote(tag.split(":", 1)[1]))
    return out


def _channels_after(subjects: Sequence[Any], prefix: str) -> list[str]:
    return [s[len(prefix) :] for s in subjects if isinstance(s, str) and s.startswith(prefix)]


def cred_card(claims: dict[str, Any], space: str) -> CredCard:
    """The card and ACL of a decoded user JWT (``claims``) on ``space``."""
    ident = str(claims.get("sub", ""))
    nats = claims.get("nats") if isinstance(claims.get("nats"), dict) else {}
    tags = nats.get("tags") if isinstance(nats.get("tags"), list) else []
    names = _tag_values(tags, TAG_NAME)
    roles = _tag_values(tags, TAG_ROLE)
    pub = nats.get("pub") if isinstance(nats.get("pub"), dict) else {}
    sub = nats.get("sub") if isinstance(nats.get("sub"), dict) else {}
    pub_allow = pub.get("allow") or []
    sub_allow = sub.get("allow") or []
    restricted = bool(pub_allow or pub.get("deny") or sub_allow or sub.get("deny"))
    chat = f"{space_prefix(space)}.chat."
    read = post = None
    if restricted:
        read = tuple(dict.fromkeys(_channels_after(sub_allow, f"{chat}*.")))
        post = tuple(dict.fromkeys(_channels_after(pub_allow, f"{chat}{ident}.")))
    return CredCard(
        id=ident,
        profile=str(claims.get("name", "")),
        name=names[0] if names else None,
        role=roles[0] if roles else None,
        boot=tuple(dict.fromkeys(_tag_values(tags, TAG_SUBSCRIBE))),
        read=read,
        post=post,
    )
