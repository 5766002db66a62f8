"""Who a process is, so that another can tell for certain whether it has ended.

A host name and a PID are not enough: a container with host networking has the
host's name and its own PID numbers, and a PID is reused once its process ends.
An owner id therefore names the kernel it runs on (the boot id, which changes at
every boot), the PID namespace, the PID and the process's start time:

    host:pid:boot:pidns:start:token

A process is judged ended only when all of that is ours (same host, same boot,
same PID namespace) and no process with that PID and start time exists now.
Anything else (another machine, another container, another boot, an id in an
older form, a system without /proc) is "not known to be dead": its lease runs out
by itself instead. Both leases use this: a send's (`mailer.delivery.lease`) and
the runner's (`mailer.schedule.lease`).
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

PROC = Path("/proc")


@dataclass(frozen=True)
class Identity:
    host: str
    boot: str  # "" where the kernel does not say (no /proc): then nobody is judged dead
    pidns: str


@lru_cache(maxsize=1)
def _kernel() -> tuple[str, str]:
    """This machine's boot id (shortened) and this process's PID namespace, or "" where unknown."""
    try:
        boot = (PROC / "sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:12]
        pidns = os.readlink(PROC / "self/ns/pid").removeprefix("pid:[").removesuffix("]")
    except OSError:
        return "", ""
    return boot, pidns


def identity() -> Identity:
    boot, pidns = _kernel()
    return Identity(socket.gethostname(), boot, pidns)


def started(pid: int) -> str:
    """When process `pid` started (clock ticks since boot), or "" when there is no such process."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22; the name in brackets may hold spaces


def this_process() -> str:
    """`host:pid:boot:pidns:start`: this process, for the names of its leases, claims and files."""
    return _describe(os.getpid())


@lru_cache(maxsize=4)
def _describe(pid: int) -> str:
    me = identity()
    return f"{me.host}:{pid}:{me.boot}:{me.pidns}:{started(pid) if me.boot else ''}"


def new_owner() -> str:
    """A fresh owner id for one lease holder in this process (a process may hold several)."""
    return f"{this_process()}:{secrets.token_hex(4)}"


def owner_is_dead(owner: str) -> bool:
    """True when `owner` (an owner id, or `this_process()` of another process) certainly no longer runs:
    a process of this kernel and PID namespace whose PID is gone or belongs to a newer process."""
    parts = owner.split(":")
    if len(parts) not in (5, 6):
        return False  # an id in an older form, or a stranger's: unknown
    host, pid, boot, pidns, start = parts[:5]
    me = identity()
    if not me.boot or (host, boot, pidns) != (me.host, me.boot, me.pidns) or not pid.isdigit():
        return False  # another machine, boot or container: only its lease running out tells
    return started(int(pid)) != start
