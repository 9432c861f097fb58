"""Loopback ports for test servers.

``free_port`` hands out ports below the kernel's ephemeral range
(``net.ipv4.ip_local_port_range``), chosen at random and never twice in one process.  A
port from ``bind(0)`` comes from that range, which outgoing connections use too: between
the test picking it and the server binding it, any client connection of the machine
could take it as its own local port (the suite saw "Address already in use" now and
then), and a server restarted on it could find it taken.  Below the range nothing but a
listener takes a port.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

_given: set[int] = set()
_lock = threading.Lock()
_rng = random.Random()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    low = _ephemeral_low()
    with _lock:
        for _ in range(500):
            port = _rng.randrange(max(1024, low - 16000), low)
            if port in _given:
                continue
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _given.add(port)
            return port
    raise RuntimeError(f"no free port below {low} on {host}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
