"""Which worker process holds each client connection to a port, from /proc (Linux).

With several workers on one port, SO_REUSEPORT hands each new *connection* to one worker's
listening socket by a hash of its addresses; every stream and call on that connection then
stays on that worker. With few connections the split is often uneven: 4 connections over 2
workers are split 2+2 only 6 times in 16, 3+1 8 times and 4+0 twice, and in a 3+1 or 4+0 run
one worker does three quarters or all of the work while the other idles.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

_ESTABLISHED = "01"
_LISTEN = "0A"


def _socket_inodes(pid: int) -> set[int]:
    out: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(fd_dir)
    except OSError:
        return out
    for name in names:
        try:
            link = os.readlink(fd_dir / name)
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def _inodes(port: int, state: str) -> set[int]:
    """Inodes of TCP sockets in `state` whose local port is `port` (server side)."""
    out: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != state:
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                out.add(int(fields[9]))
    return out


def listening(pids: Iterable[int], port: int) -> list[int]:
    """Those of `pids` that hold a socket listening on `port`: the workers."""
    listeners = _inodes(port, _LISTEN)
    return [pid for pid in pids if _socket_inodes(pid) & listeners]


def connections_per_process(pids: Iterable[int], port: int) -> dict[int, int]:
    """Established connections to `port` held by each of `pids` (0 for a pid with none)."""
    established = _inodes(port, _ESTABLISHED)
    return {pid: len(_socket_inodes(pid) & established) for pid in pids}


def spread(counts: dict[int, int]) -> str:
    """'2+2', '3+1', '4+0': connections per worker, most first."""
    return "+".join(str(n) for n in sorted(counts.values(), reverse=True))


def is_even(counts: dict[int, int]) -> bool:
    """Every worker holds the same number of connections, give or take one."""
    values = list(counts.values())
    return bool(values) and max(values) - min(values) <= 1
