"""A queue of many deferred messages: the store's queries, the server's memory and restart.

Fills a fresh SQLite store (``mailhop.store.sqlite.SqliteStore``, the server's own code)
with N deferred messages (default 1,000,000), each with one recipient in ``retry``
after one to five attempts, spread over 1,000 destination domains routed by one DNS
send connector (``*``), next attempts between one hour and two days from now, so that
nothing comes due while it is measured.  Rows are built exactly as the server routes
and places them (``Router`` gives queue, delivery type and next hop) and inserted with
``Store.submit`` in large batches.  Then it measures:

- ``store.messages.next_due(None)`` and ``next_due([connector])`` (the form the scheduler uses);
- a ``claim`` of the next due message (limit 1) and of a batch of 500 (the scheduler's
  batch), each released again afterwards;
- ``queue_summary()`` (what ``mailhop queue list`` and the console show);
- ``mailhop serve`` on that data directory: the time from starting the process until it
  greets on its SMTP port (restart time), twice, and its resident memory a few seconds
  later, against the same server on an empty store.

The page cache is warm (the store was just written); a cold start after a reboot reads
the database from disk and takes longer.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    MAILHOP,
    REPO,
    Cleanup,
    fmt,
    free_port,
    install_signal_handlers,
    machine,
    machine_line,
    mailhop_sections,
    markdown_table,
    rmtree,
    smtp_banner,
    status_kb,
    stop_process,
    store_durability,
    text_table,
    to_toml,
    tree_cpu,
    update_report,
)

from mailhop.clock import SYSTEM_CLOCK
from mailhop.model.connector import new_connector
from mailhop.model.ids import IdGenerator
from mailhop.model.message import RETRY, MessageInfo, NewMessage, NewRecipient
from mailhop.routing.router import Router
from mailhop.store.sqlite import SqliteStore

SERVER = "BENCH01"
DOMAINS = 1000
T = TypeVar("T")


async def timed(fn: Callable[[], Awaitable[T]], repeat: int = 5) -> tuple[float, T]:
    """Median seconds of ``repeat`` calls, and the last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result  # type: ignore[return-value]


async def fill(store: SqliteStore, n: int, batch: int, body_size: int, seed: int) -> tuple[str, float]:
    """Insert n deferred messages; returns the connector guid and the seconds it took."""
    connector = new_connector({"Name": "To Internet", "AddressSpaces": "*", "Usage": "Internet"}, SERVER)
    await store.connectors.create(connector)
    router = Router([connector], SERVER)
    routes = [router.route(f"user@d{i}.deferred.test", "app@corp.test") for i in range(DOMAINS)]
    rng = random.Random(seed)
    now = time.time()
    body_head = b"From: app@corp.test\r\nTo: user@example.test\r\nSubject: deferred\r\n\r\n"
    body = body_head + b"x" * max(0, body_size - len(body_head))
    ids = IdGenerator(SYSTEM_CLOCK)
    start = time.perf_counter()
    done = 0
    while done < n:
        messages = []
        for _ in range(min(batch, n - done)):
            d = rng.randrange(DOMAINS)
            route = routes[d]
            received = now - rng.uniform(60, 86_400)
            info = MessageInfo(id=ids(), sender="app@corp.test", received_at=received, size=len(body),
                               origin_server=SERVER, expires_at=received + 2 * 86_400 + 7_200, delay_at=None,
                               message_id=f"<{done}.{d}@corp.test>", subject="deferred", client_ip="127.0.0.1",
                               receive_connector="Bench Receive")
            attempts = rng.randint(1, 5)
            rcpt = NewRecipient(f"user{done % 5000}@d{d}.deferred.test", RETRY, route.queue, route.delivery_type,
                                route.next_hop_domain, now + rng.uniform(3_600, 2 * 86_400),
                                connector=route.connector_guid, attempts=attempts,
                                last_error="451 4.4.0 Primary target IP address responded with: \"421 4.4.2 try later\"",
                                id=ids())
            messages.append(NewMessage(info, body, [rcpt]))
            done += 1
        await store.messages.submit(messages)
        if done % max(batch, n // 10) < batch:
            rate = done / (time.perf_counter() - start)
            print(f"  {done:,} messages queued ({rate:,.0f}/s)", flush=True)
    return connector.guid, time.perf_counter() - start


async def store_queries(path: Path, guid: str) -> dict[str, float]:
    store = await SqliteStore.open(path)
    out: dict[str, float] = {}
    try:
        out["next_due(None)"], due = await timed(lambda: store.messages.next_due(None))
        out["next_due([connector])"], _ = await timed(lambda: store.messages.next_due([guid]))
        assert due is not None
        owner = f"{SERVER}/bench"
        for label, limit, connectors in (("claim(limit 1)", 1, None), ("claim(limit 500, [connector])", 500, [guid])):
            # The next due message at the moment it is due; 500 as when a backlog has come due.
            when = due if limit == 1 else due + 3 * 86_400
            times = []
            for _ in range(5):
                start = time.perf_counter()
                claims = await store.messages.claim(owner, when, when + 60, limit, connectors)
                times.append(time.perf_counter() - start)
                await store.messages.release(owner, when)
            out[label] = statistics.median(times)
            out[label + " rows"] = float(sum(len(c.recipients) for c in claims))
        out["queue_summary()"], summary = await timed(lambda: store.queues.summary(), repeat=3)
        out["queues"] = float(len(summary))
    finally:
        await store.close()
    return out


class Server:
    """``mailhop serve`` on a data directory: start time and memory."""

    def __init__(self, root: Path, cleanup: Cleanup) -> None:
        self.root = root
        self.cleanup = cleanup
        self.port = free_port()
        config: dict[str, object] = {
            "server": {"name": SERVER, "fqdn": "mailhop.bench.test", "data_dir": str(root / "data")},
            "receive_connectors": [{"name": "Bench Receive", "bind": f"127.0.0.1:{self.port}",
                                    "remote_ip_ranges": ["127.0.0.0/8"]}],
        }
        if "admin" in mailhop_sections():
            config["admin"] = {"enabled": False}
        self.config = root / "mailhop.toml"
        self.config.write_text(to_toml(config))
        self.log = root / "serve.log"

    def run(self, settle: float) -> dict[str, float]:
        with open(self.log, "ab") as log:
            start = time.monotonic()
            proc = subprocess.Popen([MAILHOP, "--config", str(self.config), "serve"], stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        close = self.cleanup.push(f"mailhop serve {proc.pid}", lambda: stop_process(proc, 60))
        try:
            deadline = start + 600
            while not smtp_banner("127.0.0.1", self.port):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mailhop serve did not start: see {self.log}")
                time.sleep(0.02)
            ready = time.monotonic() - start
            cpu_ready = tree_cpu(proc.pid)
            time.sleep(settle)  # let the first claim, config and heartbeat loops run
            out = {"start_s": ready, "cpu_start_s": cpu_ready, "rss_mb": status_kb(proc.pid, "VmRSS") / 1024,
                   "hwm_mb": status_kb(proc.pid, "VmHWM") / 1024, "cpu_idle_s": tree_cpu(proc.pid) - cpu_ready}
            stop = time.monotonic()
            close()
            out["stop_s"] = time.monotonic() - stop
            return out
        finally:
            close()


def log_problems(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text(errors="replace").splitlines()
            if " ERROR " in line or " CRITICAL " in line or line.startswith("Traceback")]


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="bench/queue_scale.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=1_000_000, help="deferred messages (default 1000000)")
    p.add_argument("--batch", type=int, default=10_000, help="messages per insert transaction (default 10000)")
    p.add_argument("--body-size", type=int, default=2048, help="bytes per message body (default 2048)")
    p.add_argument("--settle", type=float, default=5.0, help="seconds the server runs before its memory is read")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--workdir", type=Path, default=None, help="where the store lives (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md", help="report to update; '-' for none")
    args = p.parse_args(argv)
    install_signal_handlers()
    cleanup = Cleanup()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mailhop-queue-"))
    workdir.mkdir(parents=True, exist_ok=True)
    if args.workdir is None and not args.keep:
        cleanup.push(f"work directory {workdir}", lambda: rmtree(workdir))
    info = machine(workdir)
    print(f"machine: {machine_line(info)}")
    try:
        durability = store_durability(workdir / "durability-check" / "probe.db")
        empty_root = workdir / "empty"
        full_root = workdir / "full"
        for root in (empty_root, full_root):
            (root / "data").mkdir(parents=True, exist_ok=True)
        print("mailhop serve on an empty store ...", flush=True)
        empty = Server(empty_root, cleanup).run(args.settle)
        db = full_root / "data" / "mailhop.db"
        print(f"filling {db} with {args.messages:,} deferred messages ...", flush=True)

        async def build() -> tuple[str, float]:
            store = await SqliteStore.open(db)
            try:
                return await fill(store, args.messages, args.batch, args.body_size, args.seed)
            finally:
                await store.close()

        guid, fill_s = asyncio.run(build())
        size_mb = db.stat().st_size / 1024 / 1024
        wal = Path(str(db) + "-wal")
        wal_mb = wal.stat().st_size / 1024 / 1024 if wal.exists() else 0.0
        print(f"  {fill_s:.1f} s ({args.messages / fill_s:,.0f} messages/s), store {size_mb:,.0f} MB "
              f"+ WAL {wal_mb:,.0f} MB", flush=True)
        queries = asyncio.run(store_queries(db, guid))
        for k, v in queries.items():
            print(f"  {k}: {v * 1000:,.1f} ms" if not k.endswith(("rows", "queues")) else f"  {k}: {v:,.0f}")
        print("mailhop serve on the full store, twice ...", flush=True)
        server = Server(full_root, cleanup)
        first = server.run(args.settle)
        second = server.run(args.settle)
        problems = log_problems(full_root / "serve.log") + log_problems(empty_root / "serve.log")
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        cleanup.run()

    header = ("", "empty store", f"{args.messages:,} deferred", "again")
    runs = (empty, first, second)
    rows = [
        ["start until SMTP greets, s", *(fmt(r["start_s"], 2) for r in runs)],
        ["CPU until then, s", *(fmt(r["cpu_start_s"], 2) for r in runs)],
        [f"RSS after {args.settle:g} s, MB", *(fmt(r["rss_mb"]) for r in runs)],
        ["peak RSS (VmHWM), MB", *(fmt(r["hwm_mb"]) for r in runs)],
        [f"CPU in those {args.settle:g} s idle, s", *(fmt(r["cpu_idle_s"], 2) for r in runs)],
        ["SIGTERM until exit, s", *(fmt(r["stop_s"], 2) for r in runs)],
    ]
    qrows = [[f"`{k}`", fmt(v * 1000, 1), fmt(queries.get(k + " rows"))]
             for k, v in queries.items() if not k.endswith(("rows", "queues"))]
    print()
    print(text_table(header, rows))
    print()
    print(text_table(("store call", "ms", "rows"), [[k.strip("`"), a, b] for k, a, b in qrows]))
    for line in problems[:5]:
        print(f"server log: {line[:200]}")
    if str(args.out) != "-":
        cmd = "python bench/queue_scale.py " + " ".join(argv) if argv else "python bench/queue_scale.py"
        md = [
            f"### Queue: {args.messages:,} deferred messages",
            "",
            f"Machine: {machine_line(info)}.",
            "",
            f"Run: `{cmd}`: one recipient per message, {args.body_size:,}-byte bodies, {DOMAINS:,} destination "
            f"domains (one queue each) behind one DNS connector, next attempts 1 h to 2 days ahead; {durability}. "
            f"Filling took {fill_s:,.1f} s ({args.messages / fill_s:,.0f} messages/s in transactions of "
            f"{args.batch:,}); the store is {size_mb:,.0f} MB (WAL {wal_mb:,.0f} MB). Page cache warm.",
            "",
            markdown_table(("store call", "ms", "rows claimed"), qrows, right=(1, 2)),
            "",
            "Each call is the median of 5 (3 for `queue_summary`). `claim(limit 1)` runs at the moment the "
            "next message is due; `claim(limit 500, ...)` as when a backlog has come due (the scheduler's "
            "batch, and the form it uses: the connectors this server is a source of); both include the "
            "commit (fsync) of the lease and are released afterwards.",
            "",
            markdown_table(header, rows, right=(1, 2, 3)),
            "",
            "*start until SMTP greets*: from starting `mailhop serve` on the data directory until its "
            "receive connector answers 220 (the restart time: recovery of leases, resubmission check, "
            "heartbeat, listeners). *again*: a second restart on the same store.",
        ]
        if problems:
            md += ["", f"Errors in the server's log ({len(problems)}), first: `{problems[0][:200]}`"]
        update_report(args.out, "queue", "\n".join(md))
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
