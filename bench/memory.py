"""Memory under big messages: 50 sessions each sending a 30 MB message at once.

``mailhop serve`` runs on its defaults (apart from the receive connector and one
smart-host connector to a sink this script runs); 50 client sessions connect at the
same time and each sends one 30 MB message (text lines, some starting with a dot), so
1.5 GB pass through the server while its peak resident set (``VmHWM``) is sampled.
The target is a peak below 300 MB: a session's memory must not grow with its message
(DATA is spooled as it arrives, stored and sent in 1 MiB parts).

The sink discards what it gets and counts the bytes of each message, which must be
the size sent plus the stamped headers: a body that arrived short fails the run.

    python bench/memory.py [--sessions 50] [--size-mb 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import (
    MAILHOP,
    REPO,
    Cleanup,
    MemorySampler,
    free_port,
    install_signal_handlers,
    machine,
    machine_line,
    markdown_table,
    rmtree,
    smtp_banner,
    stop_process,
    to_toml,
    update_report,
    wait_until,
)

TARGET_MB = 300


class DiscardSink:
    """An SMTP server that takes any message and keeps only its size."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.all_arrived = asyncio.Event()
        self.sizes: list[int] = []
        self.server: asyncio.Server | None = None
        self.sessions: set[asyncio.Task[None]] = set()
        self.port = free_port()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", self.port, limit=1 << 20)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.sessions):
            task.cancel()
        await asyncio.gather(*self.sessions, return_exceptions=True)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.sessions.add(task)
        task.add_done_callback(self.sessions.discard)
        writer.write(b"220 sink ESMTP\r\n")
        try:
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    size = 0
                    tail = b""
                    while True:
                        chunk = await reader.read(1 << 20)
                        if not chunk:
                            return
                        size += len(chunk)
                        tail = (tail + chunk)[-5:]
                        if tail == b"\r\n.\r\n":
                            break
                    self.sizes.append(size)
                    if len(self.sizes) >= self.expected:
                        self.all_arrived.set()
                    writer.write(b"250 2.0.0 ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    break
                else:
                    writer.write(b"250 2.0.0 ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


def message(size: int) -> bytes:
    head = b"From: bench@corp.test\r\nTo: user@example.test\r\nSubject: big\r\n\r\n"
    line = b"." + b"x" * 70 + b"\r\n"  # every line starts with a dot: stuffed on the wire both ways
    return head + line * ((size - len(head)) // len(line))


async def send(port: int, body: bytes, index: int) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)

    async def reply() -> bytes:
        while True:
            line = await reader.readline()
            if line[3:4] != b"-":
                return line

    await reply()
    writer.write(b"EHLO bench\r\n")
    await reply()
    writer.write(f"MAIL FROM:<bench{index}@corp.test>\r\nRCPT TO:<user{index}@example.test>\r\nDATA\r\n".encode())
    for _ in range(3):
        answer = await reply()
    assert answer.startswith(b"354"), answer
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    start = time.monotonic()
    view = memoryview(stuffed)
    for offset in range(0, len(view), 1 << 20):
        writer.write(view[offset:offset + (1 << 20)])
        await writer.drain()
    writer.write(b".\r\n")
    answer = await reply()
    assert answer.startswith(b"250"), answer
    writer.write(b"QUIT\r\n")
    await writer.drain()
    writer.close()
    return time.monotonic() - start


def start_server(root: Path, sink_port: int, cleanup: Cleanup) -> tuple[subprocess.Popen[bytes], int]:
    """``mailhop serve`` on its defaults, with one receive connector and a connector to the sink."""
    port = free_port()
    config = {
        "server": {"name": "BENCH01", "fqdn": "bench01.corp.test", "data_dir": str(root / "data")},
        "receive_connectors": [{"name": "Bench", "bind": f"127.0.0.1:{port}", "remote_ip_ranges": ["127.0.0.0/8"]}],
        "admin": {"enabled": False},
    }
    config_path = root / "mailhop.toml"
    config_path.write_text(to_toml(config))
    subprocess.run([MAILHOP, "--config", str(config_path), "connector", "new", "Sink", "--dns-routing-enabled",
                    "false", "--smart-hosts", f"[127.0.0.1]:{sink_port}", "--address-spaces", "*"],
                   check=True, capture_output=True)
    with open(root / "serve.log", "ab") as log:
        proc = subprocess.Popen([MAILHOP, "--config", str(config_path), "serve"], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    cleanup.push(f"mailhop serve {proc.pid}", lambda: stop_process(proc, grace=60))
    wait_until(lambda: proc.poll() is not None or smtp_banner("127.0.0.1", port), 60, "mailhop to listen")
    return proc, port


async def run(args: argparse.Namespace, root: Path, cleanup: Cleanup) -> dict[str, float]:
    sink = DiscardSink(args.sessions)
    await sink.start()
    proc, port = await asyncio.to_thread(start_server, root, sink.port, cleanup)
    body = message(args.size_mb * 1024 * 1024)
    with MemorySampler(proc.pid, interval=0.2, pss_every=1000) as sampler:
        start = time.monotonic()
        await asyncio.gather(*(send(port, body, i) for i in range(args.sessions)))
        accepted = time.monotonic() - start
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.all_arrived.wait(), 600)
        delivered = time.monotonic() - start
    await sink.stop()
    short = [s for s in sink.sizes if s < len(body)]
    if len(sink.sizes) < args.sessions or short:
        raise RuntimeError(f"{len(sink.sizes)} of {args.sessions} messages arrived, {len(short)} short")
    return {"peak_mb": sampler.peak_hwm_kb / 1024, "accepted_s": accepted, "delivered_s": delivered,
            "mb": args.sessions * len(body) / 1024 / 1024}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--size-mb", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    args = parser.parse_args(argv)
    install_signal_handlers()
    cleanup = Cleanup()
    root = Path(tempfile.mkdtemp(prefix="mailhop-bench-memory-"))
    cleanup.push("work directory", lambda: rmtree(root))
    try:
        result = asyncio.run(run(args, root, cleanup))
        where = machine_line(machine(root))
    finally:
        cleanup.run()
    verdict = "met" if result["peak_mb"] < TARGET_MB else "MISSED"
    rows = [[f"{args.sessions} x {args.size_mb} MB", f"{result['mb']:.0f}", f"{result['peak_mb']:.0f}",
             f"{result['accepted_s']:.1f}", f"{result['delivered_s']:.1f}",
             f"{result['mb'] / result['delivered_s']:.0f}"]]
    table = markdown_table(["sessions x message", "MB in all", "peak RSS, MB", "all accepted, s",
                            "all delivered, s", "MB/s end to end"], rows, right=range(1, 6))
    body = (f"### Memory under big messages (`bench/memory.py`)\n\n{where}\n\n{table}\n\n"
            f"Target: peak RSS below {TARGET_MB} MB ({verdict}). mailhop on its defaults, one worker per CPU "
            "or as configured; the peak is the server's own `VmHWM`.\n")
    print(body)
    update_report(args.out, "memory", body)
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    raise SystemExit(main(sys.argv[1:]))
