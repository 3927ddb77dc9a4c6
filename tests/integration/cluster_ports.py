"""Ports for a test's `up --cluster 3 --port P`: it uses P, P+1 and P+2."""

from __future__ import annotations

import socket

from cotal_tui.server.process import free_port


def three_free_ports() -> int:
    """A base port whose next two are free too."""
    for _ in range(50):
        base = free_port()
        if base < 65000 and all(_free(base + i) for i in range(3)):
            return base
    raise AssertionError("no three consecutive free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
