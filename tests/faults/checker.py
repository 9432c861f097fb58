"""The fault checker: load from real SMTP clients, faults injected, invariants checked.

``make faults`` runs it long; ``tests/faults/test_faults.py`` runs a few cycles of each fault
in ``make test``.  Each fault gets its own servers, receiver and store:

``kill-9``        kill -9 of a whole server (two workers: the workers die with it), started again
``worker-kill-9`` kill -9 of one worker of a two-worker server; its parent starts it again
``sigstop``       SIGSTOP of one of two servers on PostgreSQL for longer than ``lease_timeout``,
                  then SIGCONT (the other takes its mail meanwhile)
``postgres``      PostgreSQL of a two-server cluster stopped (``pg_ctl -m immediate``) and started
``disk-full``     the data directory is a size-limited tmpfs, filled to the last byte and freed
``sigterm``       SIGTERM under load: the server must end within ``shutdown_timeout``; started again

While the faults come and go, client threads (smtplib, one message per session) send all
the time and record each ``250`` with its Message-ID, and every other answer; the receiver
(aiosmtpd) records each copy it gets, and the NDRs.  At the end the load stops and the
checker waits for the servers to finish on their own, then prints, per fault: acknowledged,
delivered, lost (acknowledged, and neither delivered nor bounced: must be 0), duplicated
(beside it the bound: the recipients the store showed in delivery at the faults, sampled
from just before each fault until it was gone: only those can be delivered twice), not yet
final, NDRs, the answers while degraded, and whether the server recovered by itself (a
``250`` again after each fault, every queue empty at the end).

    python -m tests.faults.checker [--cycles N] [--faults kill-9,sigstop,...] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tests.support.mailhop import Mailhop
from tests.support.net import free_port
from tests.support.pg import PostgresServer
from tests.support.sink import Sink
from tests.support.wait import wait_for

THREADS = 8
LEASE_TIMEOUT = 3.0
SHUTDOWN_TIMEOUT = 3.0
TMPFS_SIZE = "48m"
RECOVERY_TIMEOUT = 120.0
ID_RE = re.compile(rb"<f\d+-\d+@load\.test>")
HEADER_ID_RE = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]*>)", re.IGNORECASE | re.MULTILINE)


# --- the history ------------------------------------------------------------------------------

@dataclass
class History:
    acknowledged: dict[str, float] = field(default_factory=dict)  # Message-ID -> when the 250 came
    answers: list[tuple[float, str]] = field(default_factory=list)  # every other answer: (when, "452 4.3.1")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ack(self, mid: str) -> None:
        with self.lock:
            self.acknowledged[mid] = time.monotonic()

    def answer(self, text: str) -> None:
        with self.lock:
            self.answers.append((time.monotonic(), text))

    def acks_since(self, since: float) -> int:
        with self.lock:
            return sum(1 for t in self.acknowledged.values() if t >= since)

    def answers_between(self, start: float, end: float) -> Counter[str]:
        with self.lock:
            return Counter(a for t, a in self.answers if start <= t <= end)


def _reply_text(code: int, message: bytes) -> str:
    """``451 4.3.0``: the code and the enhanced status code of an answer."""
    words = message.decode(errors="replace").split()
    enhanced = words[0] if words and re.fullmatch(r"[245]\.\d{1,3}\.\d{1,3}", words[0]) else ""
    return f"{code} {enhanced}".strip()


class Load:
    """Client threads sending one message per session, round robin over the servers' ports."""

    def __init__(self, history: History, ports: Callable[[], list[int]], threads: int = THREADS) -> None:
        self.history = history
        self.ports = ports
        self.threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(threads)]
        self.stopping = threading.Event()

    def _client(self, n: int) -> None:
        i = 0
        while not self.stopping.is_set():
            ports = self.ports()
            port = ports[(n + i) % len(ports)]
            mid = f"<f{n}-{i}@load.test>"
            i += 1
            body = (f"From: app@load.test\r\nTo: user{n}@fabrikam.test\r\nMessage-ID: {mid}\r\n"
                    f"Subject: load {n}/{i}\r\n\r\n" + "x" * 512 + "\r\n")
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                    smtp.sendmail("app@load.test", [f"user{n}@fabrikam.test"], body)
            except smtplib.SMTPRecipientsRefused as exc:
                for code, message in exc.recipients.values():
                    self.history.answer(_reply_text(code, message))
            except smtplib.SMTPResponseException as exc:
                self.history.answer(_reply_text(exc.smtp_code, exc.smtp_error))
            except (OSError, smtplib.SMTPException):
                self.history.answer("no connection")
            else:
                self.history.ack(mid)
                continue
            time.sleep(0.05)  # a client waits a little before it tries again

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(60)


def delivered_copies(sink: Sink) -> tuple[Counter[str], set[str]]:
    """Copies per Message-ID that reached the receiver, and the Message-IDs of bounced messages."""
    copies: Counter[str] = Counter()
    bounced: set[str] = set()
    for m in sink.messages:
        if m.mail_from == "":
            own = HEADER_ID_RE.search(m.data)
            bounced |= {i.decode() for i in ID_RE.findall(m.data) if not own or i != own.group(1)}
        else:
            found = HEADER_ID_RE.search(m.data)
            if found:
                copies[found.group(1).decode()] += 1
    return copies, bounced


# --- what the store shows in delivery ---------------------------------------------------------

class ActiveSampler:
    """Recipients leased for delivery (status 'active'): sampled around each fault, their union
    is the bound on duplicates (a recipient not in delivery at a fault cannot be delivered twice)."""

    def __init__(self, query: Callable[[], set[int]]) -> None:
        self.query = query
        self.seen: set[int] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> None:
        with contextlib.suppress(Exception):  # the store may be down or full: that is the fault
            self.seen |= self.query()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    @contextlib.contextmanager
    def around(self) -> Iterator[None]:
        self.sample()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()
            self.sample()


ACTIVE_SQL = "SELECT id FROM recipients WHERE status = 'active'"
# Message-IDs with a recipient that is not final yet (Poison counts as not final).
PENDING_SQL = ("SELECT DISTINCT m.message_id FROM messages m JOIN recipients r ON r.message_id = m.id "
               "WHERE r.status NOT IN ('delivered', 'failed')")


def sqlite_query(db: Path, sql: str) -> Callable[[], set[Any]]:
    def query() -> set[Any]:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return {r[0] for r in conn.execute(sql)}
        finally:
            conn.close()
    return query


def postgres_query(url: str, sql: str) -> Callable[[], set[Any]]:
    import psycopg

    def query() -> set[Any]:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return {r[0] for r in conn.execute(sql)}
    return query


# --- the faults ---------------------------------------------------------------------------------

@dataclass
class Row:
    fault: str
    cycles: int
    acknowledged: int
    delivered: int
    lost: int
    duplicated: int
    in_flight: int
    not_final: int
    ndrs: int
    degraded: Counter[str]
    recovered: bool
    recovery: str
    notes: list[str]
    expected: str | None = None  # the degraded answer this fault must produce

    @property
    def ok(self) -> bool:
        expected_seen = self.expected is None or self.degraded[self.expected] > 0
        return (self.lost == 0 and self.duplicated <= self.in_flight and self.not_final == 0
                and self.recovered and expected_seen)


class Fault:
    """One kind of fault: builds its servers, then injects and clears the fault per cycle."""

    name = ""
    expected: str | None = None
    workers = 1
    queue: ClassVar[dict[str, Any]] = {}

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.sink = Sink(port=free_port(), delay=0.02).start()
        self.servers: list[Mailhop] = []
        self.extra: dict[str, Any] = {}
        self.store_url: str | None = None

    # topology
    def make_servers(self) -> None:
        self.servers = [self.server("EXCH01")]

    def server(self, name: str, **sections: Any) -> Mailhop:
        server = {"name": name, "fqdn": f"{name.lower()}.contoso.test", "workers": self.workers,
                  "shutdown_timeout": f"{SHUTDOWN_TIMEOUT}s"}
        if self.store_url:
            server["store"] = self.store_url
        return Mailhop(self.root / name, name=name, fqdn=server["fqdn"], server=server,
                       cluster={"lease_timeout": f"{LEASE_TIMEOUT}s", "heartbeat_interval": "0.5s"},
                       queue={"glitch_retry_interval": "1s", "transient_retry_interval": "1s",
                              "message_retry_interval": "1s", "retry_jitter": 0, **self.queue}, **sections)

    def query(self, sql: str) -> Callable[[], set[Any]]:
        if self.store_url:
            return postgres_query(self.store_url, sql)
        return sqlite_query(self.servers[0].data_dir / "mailhop.db", sql)

    def setup(self) -> None:
        self.make_servers()
        for s in self.servers:
            s.start()
        names = ",".join(s.root.name for s in self.servers)
        self.servers[0].relay(self.sink.port, "--source-transport-servers", names)
        for s in self.servers:
            s.wait_config(1)

    def ports(self) -> list[int]:
        return [s.port for s in self.servers]

    def inject(self) -> str:
        raise NotImplementedError

    def clear(self) -> str:
        return ""

    def hold(self) -> float:
        return self.rng.uniform(0.5, 2.0)

    def teardown(self) -> None:
        for s in self.servers:
            with contextlib.suppress(Exception):
                if s.proc is not None and s.proc.poll() is None:
                    os.kill(s.proc.pid, signal.SIGCONT)
                s.stop()
        self.sink.stop()


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


class Kill9(Fault):
    name = "kill-9"
    workers = 2

    def inject(self) -> str:
        server = self.servers[0]
        workers = _children(server.proc.pid)  # type: ignore[union-attr]
        server.kill()
        # The workers die with their parent (PR_SET_PDEATHSIG): none may go on serving.
        wait_for(lambda: not any(Path(f"/proc/{w}").exists() and _alive(w) for w in workers),
                 timeout=10, what="the workers to die with their parent")
        return ""

    def hold(self) -> float:
        return 0.0

    def clear(self) -> str:
        self.servers[0].start()
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


class WorkerKill9(Fault):
    name = "worker-kill-9"
    workers = 2

    def inject(self) -> str:
        server = self.servers[0]
        workers = _children(server.proc.pid)  # type: ignore[union-attr]
        victim = self.rng.choice(workers)
        os.kill(victim, signal.SIGKILL)
        return f"worker {victim}"

    def hold(self) -> float:
        return 0.0

    def clear(self) -> str:
        server = self.servers[0]
        wait_for(lambda: len([w for w in _children(server.proc.pid) if _alive(w)]) == 2,  # type: ignore[union-attr]
                 timeout=30, what="the parent to start the killed worker again")
        return ""


class SigTerm(Fault):
    name = "sigterm"

    def inject(self) -> str:
        started = time.monotonic()
        status = self.servers[0].terminate(timeout=SHUTDOWN_TIMEOUT + 30)
        took = time.monotonic() - started
        self.extra.setdefault("exits", []).append(took)
        if status != 0 or took > SHUTDOWN_TIMEOUT + 5:
            raise AssertionError(f"SIGTERM: exit {status} after {took:.1f} s (shutdown_timeout {SHUTDOWN_TIMEOUT} s)")
        return f"exit 0 after {took:.1f} s"

    def hold(self) -> float:
        return 0.0

    def clear(self) -> str:
        self.servers[0].start()
        return ""


class Cluster(Fault):
    """Two servers on one PostgreSQL, both source servers of the connector, both taking load."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        super().__init__(root, rng)
        self.pg = PostgresServer(port=free_port()).start()
        self.store_url = self.pg.database()

    def make_servers(self) -> None:
        self.servers = [self.server("EXCH01"), self.server("EXCH02")]

    def teardown(self) -> None:
        super().teardown()
        self.pg.stop()


class SigStop(Cluster):
    name = "sigstop"

    def inject(self) -> str:
        os.kill(self.servers[0].proc.pid, signal.SIGSTOP)  # type: ignore[union-attr]
        return ""

    def hold(self) -> float:
        return LEASE_TIMEOUT + self.rng.uniform(1.0, 3.0)  # longer than lease_timeout: EXCH02 takes over

    def clear(self) -> str:
        os.kill(self.servers[0].proc.pid, signal.SIGCONT)  # type: ignore[union-attr]
        return ""


class PostgresDown(Cluster):
    name = "postgres"
    expected = "451 4.3.0"

    def pg_ctl(self, *args: str) -> None:
        self.pg._run(str(self.pg.bindir / "pg_ctl"), "-D", str(self.pg.data), *args)

    def inject(self) -> str:
        self.pg_ctl("-m", "immediate", "stop")
        return ""

    def hold(self) -> float:
        return self.rng.uniform(2.0, 5.0)

    def clear(self) -> str:
        options = (f"-p {self.pg.port} -k {self.pg.root} -c listen_addresses=127.0.0.1 -c fsync=on "
                   "-c max_connections=200")
        self.pg_ctl("-l", str(self.pg.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        return ""


class DiskFull(Fault):
    name = "disk-full"
    expected = "452 4.3.1"
    queue: ClassVar[dict[str, Any]] = {"min_free_space": "4MB"}  # of a 48 MB tmpfs (the default, 100 MB, is for real disks)

    def make_servers(self) -> None:
        data = self.root / "EXCH01" / "data"
        data.mkdir(parents=True)
        mount = ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(data)]
        subprocess.run(mount if os.geteuid() == 0 else ["sudo", "-n", *mount], check=True, capture_output=True)
        self.mounted = data
        self.servers = [self.server("EXCH01")]

    def inject(self) -> str:
        filler = self.mounted / "filler"
        with open(filler, "wb", buffering=0) as f:
            for size in (1 << 20, 1 << 12, 1):
                with contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * size)
        return f"filled ({filler.stat().st_size >> 20} MB)"

    def hold(self) -> float:
        return self.rng.uniform(2.0, 4.0)

    def clear(self) -> str:
        (self.mounted / "filler").unlink()
        return ""

    def teardown(self) -> None:
        super().teardown()
        umount = ["umount", "-l", str(self.mounted)]
        subprocess.run(umount if os.geteuid() == 0 else ["sudo", "-n", *umount], check=False, capture_output=True)


FAULTS: dict[str, type[Fault]] = {f.name: f for f in (Kill9, WorkerKill9, SigStop, PostgresDown, DiskFull, SigTerm)}


def disk_full_possible() -> bool:
    """A tmpfs needs root (or sudo without a password)."""
    if os.geteuid() == 0:
        return True
    return subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0


# --- one run ------------------------------------------------------------------------------------

def queues_empty(server: Mailhop) -> bool:
    try:
        return all(q["MessageCount"] == 0 for q in server.cli_json("queue", "list"))
    except (AssertionError, ValueError):
        return False


def run_fault(kind: type[Fault], cycles: int, seed: int, workdir: Path, log: Callable[[str], None]) -> Row:
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix=f"faults-{kind.name}-", dir=workdir))
    fault = kind(root, rng)
    history = History()
    notes: list[str] = []
    recovery: list[float] = []
    try:
        fault.setup()
        sampler = ActiveSampler(fault.query(ACTIVE_SQL))
        load = Load(history, fault.ports)
        load.start()
        wait_for(lambda: len(history.acknowledged) >= 50, timeout=60, what="load before the first fault")
        windows: list[tuple[float, float]] = []
        for cycle in range(cycles):
            time.sleep(rng.uniform(0.5, 2.0))
            start = time.monotonic()
            with sampler.around():  # what is in delivery from just before the fault until it is gone
                note = fault.inject()
                time.sleep(fault.hold())
                note = " ".join(n for n in (note, fault.clear()) if n)
            cleared = time.monotonic()
            # Recovered by itself: a 250 again after the fault, without any help.
            wait_for(lambda c=cleared: history.acks_since(c) > 0, timeout=RECOVERY_TIMEOUT,
                     what=f"a 250 after {kind.name} #{cycle + 1}")
            recovery.append(time.monotonic() - cleared)
            windows.append((start, time.monotonic()))
            if note:
                notes.append(f"#{cycle + 1}: {note}")
            log(f"{kind.name} #{cycle + 1}: {note or 'done'}; 250 again after {recovery[-1]:.1f} s; "
                f"{len(history.acknowledged)} acknowledged so far")
        time.sleep(1.0)
        load.stop()
        acknowledged = set(history.acknowledged)

        def settled() -> bool:
            copies, bounced = delivered_copies(fault.sink)
            return acknowledged <= set(copies) | bounced

        drained = True
        try:
            wait_for(settled, timeout=RECOVERY_TIMEOUT, what="every acknowledged message delivered")
            wait_for(lambda: all(queues_empty(s) for s in fault.servers), timeout=RECOVERY_TIMEOUT,
                     what="every queue empty")
        except AssertionError as exc:
            drained = False
            notes.append(str(exc))
            for s in fault.servers:
                with contextlib.suppress(AssertionError):
                    notes.append(f"{s.root.name} queues: {s.cli('queue', 'list').stdout + s.cli('queue', 'messages').stdout[:3000]}")
        time.sleep(1.0)  # a duplicate still on its way is counted
        copies, bounced = delivered_copies(fault.sink)
        delivered = acknowledged & set(copies)
        final = delivered | (acknowledged & bounced)
        # Not final: still in a queue (Poison included); lost: acknowledged and nowhere.
        pending = fault.query(PENDING_SQL)() & (acknowledged - final)
        not_final = len(pending)
        lost = len(acknowledged - final - pending)
        degraded: Counter[str] = Counter()
        for start, end in windows:
            degraded += history.answers_between(start, end)
        return Row(
            fault=kind.name, cycles=cycles, acknowledged=len(acknowledged), delivered=len(delivered), lost=lost,
            duplicated=sum(n - 1 for mid, n in copies.items() if mid in acknowledged and n > 1),
            in_flight=len(sampler.seen), not_final=not_final, ndrs=len(acknowledged & bounced), degraded=degraded,
            recovered=drained and len(recovery) == cycles,
            recovery=f"250 again within {max(recovery):.1f} s" if recovery else "-", notes=notes,
            expected=kind.expected)
    finally:
        fault.teardown()


# --- the report -------------------------------------------------------------------------------

COLUMNS = ["fault", "cycles", "acknowledged", "delivered", "lost", "duplicated (bound: in flight)",
           "not yet final", "NDRs", "answers while degraded", "recovered by itself"]


def cells(row: Row) -> list[str]:
    degraded = ", ".join(f"{a} ×{n}" for a, n in row.degraded.most_common(4)) or "-"
    return [row.fault, str(row.cycles), str(row.acknowledged), str(row.delivered), str(row.lost),
            f"{row.duplicated} (≤ {row.in_flight})", str(row.not_final), str(row.ndrs), degraded,
            ("yes, " if row.recovered else "NO, ") + row.recovery]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=20, help="faults of each kind (default 20)")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma-separated: " + ", ".join(FAULTS))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--markdown", type=Path, help="also write the last table to this file")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.faults.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(unknown)}")
    if "disk-full" in names and not disk_full_possible():
        print("disk-full needs root or password-less sudo (it mounts a tmpfs): left out", file=sys.stderr)
        names.remove("disk-full")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="mailhop-faults-") as workdir:
        for n, name in enumerate(names):
            row = run_fault(FAULTS[name], args.cycles, args.seed + n, Path(workdir), lambda s: print(s, flush=True))
            rows.append(row)
            print(f"\n{table([row])}\n", flush=True)
            for note in row.notes:
                print(f"  {note}")
    print("\nAll faults:\n")
    print(table(rows))
    if args.markdown:
        args.markdown.write_text(table(rows) + "\n")
    bad = [r.fault for r in rows if not r.ok]
    if bad:
        print(f"\nFAILED: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
