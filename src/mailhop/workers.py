"""Several worker processes for one transport server (``[server] workers``), like Postfix's master.

The parent forks the workers before any event loop or thread exists; each worker runs
a whole ``Service`` (its own receive listeners bound with SO_REUSEPORT, so the kernel
spreads connections, its own scheduler and store connections) and leases mail under
its own owner name, ``NAME/<worker>/<incarnation>``.  The parent forwards SIGTERM and
SIGINT to the workers and waits for them to drain; a worker that dies is started
again (its leases are recovered by its next incarnation).  Only worker 0 serves the
admin API.  A parent that is killed (kill -9, the OOM killer) takes its workers with it
(Linux ``PR_SET_PDEATHSIG``), as Postfix's master does: orphans would go on serving
on the shared port beside the server started in its place, and hold leases it frees.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from mailhop.config import Settings

log = logging.getLogger("mailhop.workers")
RESTART_DELAY = 1.0
FATAL = 78  # EX_CONFIG: a worker that exits with it failed at start; the others stop too, nothing restarts


PR_SET_PDEATHSIG = 1


def share(settings: Settings, index: int, count: int) -> Settings:
    """Worker ``index``'s part of the server's outbound limits (``[delivery]
    max_outbound_connections`` and ``max_per_domain_outbound_connections``), so that the
    server as a whole keeps them: 20 per domain is 10 and 10 with two workers.  Each worker
    gets at least one, so a limit below the number of workers is exceeded up to it."""
    if count <= 1:
        return settings
    d = settings.delivery

    def part(total: int) -> int:
        return max(1, total // count + (1 if index < total % count else 0))

    delivery = d.model_copy(update={"max_outbound_connections": part(d.max_outbound_connections),
                                    "max_per_domain_outbound_connections": part(d.max_per_domain_outbound_connections)})
    return settings.model_copy(update={"delivery": delivery})


def die_with_parent(parent: int) -> None:
    """SIGKILL this process when its parent ends (Linux; elsewhere nothing happens)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        log.warning("PR_SET_PDEATHSIG failed (errno %d): workers outlive a killed parent", ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the call: nothing will signal us
        os._exit(1)


def supervise(count: int, run_worker: Callable[[int], int]) -> int:
    """Run ``count`` workers until a signal asks them to stop; return the exit status."""
    children: dict[int, int] = {}  # pid -> worker index
    stopping = False

    parent = os.getpid()

    def spawn(index: int) -> None:
        pid = os.fork()
        if pid == 0:
            die_with_parent(parent)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 1
            try:
                code = run_worker(index)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = index

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in list(children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for index in range(count):
        spawn(index)
    status = 0
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        index = children.pop(pid, -1)
        if index < 0:
            continue
        code = os.waitstatus_to_exitcode(wait_status)
        if code == FATAL and not stopping:
            forward(signal.SIGTERM, None)
            status = 1
            continue
        if stopping:
            status = status or (code if code > 0 else 0)
            continue
        log.error("worker %d (pid %d) exited with %d; starting it again", index, pid, code)
        time.sleep(RESTART_DELAY)
        spawn(index)
    return status
