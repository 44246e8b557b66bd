"""CPU time per process group around a bench phase (Linux /proc), to say where a request's cost goes.

Throughput ratios say how far a path is from its baseline; they do not say whether the gap is the code or the
parts it must use. Each phase is bracketed with `CpuMeter`: the server's process tree (the gunicorn master and its
workers), the PostgreSQL server's processes, the Redis server, and this process (the bench's own client). A
process that starts and ends inside a phase is missed, which none of these do. Not a dependency: /proc is read
directly (psutil is not in requirements.txt).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, user + system CPU seconds)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / _TICK)
    return out


def _snapshot(server_pid: int | None) -> dict[str, float]:
    procs = _processes()
    tree = {server_pid} if server_pid else set()
    grew = True
    while grew:  # the server's descendants
        grew = False
        for pid, (parent, _name, _cpu) in procs.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    groups = {"server": 0.0, "postgres": 0.0, "redis": 0.0}
    for pid, (_parent, name, cpu) in procs.items():
        if pid in tree:
            groups["server"] += cpu
        elif name.startswith("postgres"):
            groups["postgres"] += cpu
        elif name.startswith("redis-server"):
            groups["redis"] += cpu
    usage = resource.getrusage(resource.RUSAGE_SELF)
    groups["client"] = usage.ru_utime + usage.ru_stime
    return groups


class CpuMeter:
    """`with CpuMeter(pid) as cpu: ...` -> cpu.seconds: CPU seconds per group spent inside the block."""

    def __init__(self, server_pid: int | None) -> None:
        self.server_pid = server_pid
        self.seconds: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._before = _snapshot(self.server_pid)
        return self

    def __exit__(self, *exc) -> None:
        after = _snapshot(self.server_pid)
        self.seconds = {k: max(0.0, after[k] - self._before[k]) for k in after}

    def per_request_us(self, requests: int) -> dict[str, int]:
        return {k: round(v / max(requests, 1) * 1e6) for k, v in self.seconds.items()}
