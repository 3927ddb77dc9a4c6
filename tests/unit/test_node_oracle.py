"""Differential tests against Node (the reference's runtime) for the JavaScript semantics we
emulate: WHATWG URL parsing of join links, trim/toLowerCase/JSON.stringify, String()/Number(),
encode/decodeURIComponent. Random but seeded inputs; Node's answers are the expected values.

Skipped only when no ``node`` executable is on PATH (the oracle is not part of the project).
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import cotal_tui.protocol as p
from cotal_tui.protocol import jsstr

ORACLES = Path(__file__).parent / "oracle"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="node is not installed: no oracle to ask")

ALPHABET = list("abcXYZ019-_.:/@?#&=%,+ \t\\[]~!$'()*;é日") + [
    "%41", "%2e", "%2E", "%zz", "%E0%A4", "..", ".", "0x", "255", "::1", "\ud800", "😀", "\n",
]  # fmt: skip
HOSTS = [
    "h", "H.Ex", "127.0.0.1", "[::1]", "[::FFFF:1.2.3.4]", "0x7f.1", "1.2.3", "a.1", "256", "",
    "h.", "ß", "Ünï", "h%41", "h%", "a b", "h|x",
]  # fmt: skip
TAILS = [
    "/", "/s", "/./", "/../", "/%2e%2e/", "//", "\\", "?channel=a,b", "&channels=x",
    "?channel=%20a+b", "#f", "/sp ace", "/caf%C3%A9", "??channel=a",
]  # fmt: skip


def _ask(oracle: str, payload: str) -> Any:
    assert NODE is not None
    done = subprocess.run(
        [NODE, str(ORACLES / oracle)], input=payload, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"the node oracle {oracle} failed: {done.stderr}"
    return json.loads(done.stdout)


def _random_link(rng: random.Random) -> str:
    parts = [rng.choice(["cotal://", "cotals://", "cotal://", "cotal:/", "COTAL://"])]
    if rng.random() < 0.3:
        parts.append(rng.choice(["tok@", "u:p@", ":p@", "u:@", "a%40b:c%3A@", "x@y@"]))
    parts.append(rng.choice(HOSTS))
    if rng.random() < 0.5:
        parts.append(rng.choice([":4222", ":80", ":443", ":0080", ":", ":99999", ":12a", ":1"]))
    for _ in range(rng.randint(0, 5)):
        parts.append(rng.choice(TAILS))
        if rng.random() < 0.4:
            parts.append("".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4))))
    return "".join(parts)


def _ours(link: str) -> dict[str, Any]:
    try:
        return {"ok": p.parse_join_link(link).to_dict()}
    except p.InvalidUrl:
        return {"err": "TypeError"}
    except p.UriMalformed:
        return {"err": "URIError"}
    except p.InvalidJoinLink as exc:
        return {"err": "NotLink" if "not a Cotal link" in str(exc) else "NoSpace"}


def test_join_links_parse_like_node() -> None:
    rng = random.Random(20260)
    links = [_random_link(rng) for _ in range(1500)]
    expected = _ask("join_link_oracle.js", "\n".join(json.dumps(link) for link in links))
    assert len(expected) == len(links)
    outcomes = {next(iter(e)) + ":" + str(e.get("err", "")) for e in expected}
    assert outcomes >= {"ok:", "err:TypeError", "err:URIError", "err:NotLink", "err:NoSpace"}
    mismatches = []
    for link, exp in zip(links, expected, strict=True):
        if "ok" in exp:
            exp = {"ok": {k: v for k, v in exp["ok"].items() if v is not None}}
        if _ours(link) != exp:
            mismatches.append((link, exp, _ours(link)))
    assert not mismatches, f"{len(mismatches)} links parse unlike Node, e.g. {mismatches[:3]}"


POOL = [chr(c) for c in [*range(0x80), 0x85, 0xA0, 0x1680, 0x180E, 0x2000, 0x200B, 0x2028]] + [
    chr(c) for c in [0x202F, 0x205F, 0x3000, 0xFEFF, 0xDF, 0x130, 0x3A3, 0xE9, 0x65E5, 0x1F642]
]


def _text(rng: random.Random, n: int = 6) -> str:
    return "".join(rng.choice(POOL) for _ in range(rng.randint(0, n)))


def _number(rng: random.Random) -> float:
    return rng.choice(
        [
            rng.uniform(-1e25, 1e25),
            rng.random() * 10 ** rng.randint(-10, 25),
            float(rng.randint(-(10**6), 10**6)),
            float(2**53 + rng.randint(0, 10)),
            1e21,
            1e-7,
            0.1 + 0.2,
        ]
    )


OURS = {
    "trim": jsstr.js_trim,
    "token": p.token,
    "lower": lambda s: jsstr.js_trim(s).lower(),
    "json": jsstr.js_json_string,
    "len": jsstr.utf16_len,
    "numstr": jsstr.js_number_str,
    "tonum": lambda s: jsstr.js_number_str(jsstr.js_to_number(s)),
    "enc": p.encode_uri_component,
    "dec": p.decode_uri_component,
}


def _ours_builtin(fn: str, arg: Any) -> Any:
    try:
        return OURS[fn](arg)
    except p.UriMalformed:
        return "THROW:URIError"


def test_js_builtins_agree_with_node() -> None:
    rng = random.Random(7)
    cases: list[list[Any]] = []
    for _ in range(400):
        for fn in ("trim", "token", "lower", "json", "len", "enc"):
            cases.append([fn, _text(rng)])
        cases.append(["numstr", _number(rng)])
        cases.append(["tonum", rng.choice([" 12 ", "", "1_0", "0x1A", "1e3", "inf", "-0", ".5"])])
        escapes = ["%", "%4", "%41", "%E0%A4%A", "%C3%A9", "%F0%9F%99%82", "%ED%A0%80", "%zz"]
        cases.append(["dec", rng.choice(escapes) + _text(rng, 2)])
    expected = _ask("js_semantics_oracle.js", json.dumps(cases))
    mismatches = [
        (fn, arg, exp, _ours_builtin(fn, arg))
        for (fn, arg), exp in zip(cases, expected, strict=True)
        if _ours_builtin(fn, arg) != exp
    ]
    assert not mismatches, f"{len(mismatches)} built-in results differ from Node: {mismatches[:5]}"
