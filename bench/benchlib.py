"""What the benchmark scripts share: the machine, process accounting, cleanup, the report file.

Process accounting reads /proc only (psutil is not a dependency):
- CPU: ``utime + stime`` of every process of a tree, plus ``cutime + cstime`` (the
  CPU of children that already exited and were reaped), so a tree's total only grows
  while processes come and go (Postfix replaces an smtpd after ``max_use`` clients).
- Memory: a sampler thread walks the tree a few times a second and keeps the largest
  sum over the live processes of ``VmHWM`` (each process's own peak resident set),
  and of ``Pss`` from ``smaps_rollup`` (shared pages divided among their users, so
  Postfix's many processes are not charged their shared libraries again and again).
  For a single process (mailhop) the RSS figure is its exact ``VmHWM``.

``Cleanup`` runs registered undo actions in reverse order on normal exit, on errors,
on Ctrl-C and on SIGTERM, so no Postfix instance or sink outlives a run.

The report is ``docs/performance.md``: the scripts regenerate only the part between
``<!-- bench:begin -->`` and ``<!-- bench:end -->``, and inside it only their own
block (``<!-- bench:part NAME -->`` ... ``<!-- bench:part-end NAME -->``), so the
throughput, routing and queue results can be refreshed independently and the prose
around them is never touched.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # the test suite's helpers: one Postfix master.cf, one TOML writer

from tests.support.mailhop import to_toml  # noqa: E402,F401 - re-exported for the scripts
from tests.support.postfix import MASTER_SERVICES  # noqa: E402,F401

VENV_BIN = Path(sys.executable).parent
MAILHOP = str(VENV_BIN / "mailhop")
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"


# --- cleanup -------------------------------------------------------------------------------


class Cleanup:
    """Undo actions run last-in first-out, whatever way the run ends."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], None]]] = []
        self._lock = threading.Lock()

    def push(self, what: str, action: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._actions.append((what, action))

        def run_now() -> None:
            with self._lock:
                try:
                    self._actions.remove((what, action))
                except ValueError:
                    return
            action()
        return run_now

    def run(self) -> None:
        while True:
            with self._lock:
                if not self._actions:
                    return
                what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:  # keep cleaning up the rest
                print(f"bench: cleanup of {what} failed: {exc}", file=sys.stderr)


def install_signal_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP behave like Ctrl-C: the ``finally`` blocks run the cleanup.

    SIGINT too, because a shell starts background jobs with SIGINT ignored and Python
    keeps it so; ``kill -INT`` must still stop a run cleanly.
    """
    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGHUP, interrupt)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal one process we started (by its pid), then kill it if it does not leave in time."""
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# --- network -------------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def smtp_banner(host: str, port: int, timeout: float = 0.5) -> bool:
    """True once a server on host:port greets with 220 (then QUIT politely)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout * 4)
            data = s.recv(512)
            if not data.startswith(b"220"):
                return False
            try:
                s.sendall(b"QUIT\r\n")
                s.recv(512)
            except OSError:
                pass
            return True
    except OSError:
        return False


def wait_until(predicate: Callable[[], object], timeout: float, what: str, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(step)


# --- /proc ---------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def proc_stat(pid: int) -> tuple[int, float] | None:
    """(ppid, CPU seconds of the process and its reaped children) or None when gone."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    fields = text[text.rindex(")") + 2:].split()
    # fields[0] is field 3 (state) of proc(5): ppid = 4, utime = 14, stime = 15, cutime = 16, cstime = 17
    ppid = int(fields[1])
    ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return ppid, ticks / CLK_TCK


def tree(root: int) -> list[int]:
    """``root`` and all its descendants that are alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = proc_stat(int(entry))
        if st is not None:
            children.setdefault(st[0], []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if os.path.exists(f"/proc/{pid}"):
            out.append(pid)
            todo.extend(children.get(pid, ()))
    return out


def tree_cpu(root: int) -> float:
    total = 0.0
    for pid in tree(root):
        st = proc_stat(pid)
        if st is not None:
            total += st[1]
    return total


def host_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores, from /proc/stat)."""
    fields = (_read("/proc/stat") or "cpu 0").splitlines()[0].split()[1:]
    values = [int(x) for x in fields] + [0] * 8
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def own_cpu() -> float:
    """CPU seconds of this process and the children it has reaped."""
    import resource
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def status_kb(pid: int, key: str) -> int:
    text = _read(f"/proc/{pid}/status")
    if text is None:
        return 0
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def pss_kb(pid: int) -> int:
    text = _read(f"/proc/{pid}/smaps_rollup")
    if text is None:
        return 0
    m = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


class MemorySampler:
    """Peak memory of a process tree, sampled in a thread (see the module docstring).

    Sampling is kept cheap because it competes with the system under test for the
    same cores: VmHWM (each process's own peak, so short peaks between samples are not
    missed for processes that live on) once a second, Pss (``smaps_rollup`` is slow to
    read, milliseconds per process) every ``pss_every`` samples, in a thread at a lower
    priority.
    """

    def __init__(self, root: int, interval: float = 1.0, pss_every: int = 2) -> None:
        self.root = root
        self.interval = interval
        self.pss_every = pss_every
        self._n = 0
        self.peak_hwm_kb = 0
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.max_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def sample(self, pss: bool = True) -> None:
        pids = tree(self.root)
        hwm = rss = 0
        for p in pids:
            text = _read(f"/proc/{p}/status") or ""
            m = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
            hwm += int(m.group(1)) if m else 0
            m = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
            rss += int(m.group(1)) if m else 0
        self.peak_hwm_kb = max(self.peak_hwm_kb, hwm)
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        if pss:
            self.peak_pss_kb = max(self.peak_pss_kb, sum(pss_kb(p) for p in pids))
        self.max_processes = max(self.max_processes, len(pids))

    def _run(self) -> None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        except OSError:
            pass
        while not self._stop.wait(self.interval):
            self._n += 1
            self.sample(pss=self._n % self.pss_every == 0)

    def __enter__(self) -> MemorySampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


# --- the machine ----------------------------------------------------------------------------


def _cmd(*args: str) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine(workdir: Path | None = None) -> dict[str, str]:
    cpuinfo = _read("/proc/cpuinfo") or ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    meminfo = _read("/proc/meminfo") or ""
    mem = re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.M)
    osrel = _read("/etc/os-release") or ""
    pretty = re.search(r'^PRETTY_NAME="?([^"\n]+)', osrel, re.M)
    info = {
        "cpu": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": str(os.cpu_count()),
        "ram": f"{int(mem.group(1)) / 1024 / 1024:.1f} GiB" if mem else "unknown",
        "kernel": platform.release(),
        "os": pretty.group(1) if pretty else platform.system(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postfix": _cmd("postconf", "-d", "-h", "mail_version") or "not installed",
        "mailhop": mailhop_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load": " ".join((_read("/proc/loadavg") or "? ? ?").split()[:3]),
    }
    if workdir is not None:
        fs = _cmd("findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(workdir))
        info["disk"] = " ".join(fs.split()) or "unknown"
        info["fsync"] = f"{fsync_latency_ms(workdir):.2f} ms"
    return info


def fsync_latency_ms(directory: Path, count: int = 50) -> float:
    """Median time of a 4 KiB append plus fsync there: what one durable commit costs at least."""
    path = directory / ".fsync-probe"
    times = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for _ in range(count):
            start = time.perf_counter()
            os.write(fd, b"x" * 4096)
            os.fsync(fd)
            times.append(time.perf_counter() - start)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return (percentile(times, 50) or 0.0) * 1000


def mailhop_version() -> str:
    try:
        from mailhop import __version__
    except ImportError:
        return "not installed"
    commit = _cmd("git", "-C", str(REPO), "rev-parse", "--short", "HEAD")
    dirty = _cmd("git", "-C", str(REPO), "status", "--porcelain", "--", "src")
    return f"{__version__} (git {commit or '?'}{', src/ modified' if dirty else ''}, src digest {src_digest()})"


def src_digest() -> str:
    """A short hash of every file under src/mailhop: which code exactly was measured."""
    import hashlib
    h = hashlib.sha256()
    root = REPO / "src" / "mailhop"
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]


def machine_line(info: dict[str, str]) -> str:
    parts = [
        f"{info['cpu']}, {info['cores']} cores, {info['ram']} RAM",
        f"{info['os']}, kernel {info['kernel']}",
    ]
    if "disk" in info:
        parts.append(f"work directory on {info['disk']} (4 KiB write + fsync: {info['fsync']} median)")
    parts += [
        f"Python {info['python']}, SQLite {info['sqlite']}, Postfix {info['postfix']}",
        f"mailhop {info['mailhop']}",
        f"{info['date']}, load average at start {info['load']}",
    ]
    return "; ".join(parts)


# --- numbers and tables ---------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def median(values: Iterable[float | None]) -> float | None:
    data = [v for v in values if v is not None]
    return percentile(data, 50)


def fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    right = set(right)
    align = ["---:" if i in right else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


# --- docs/performance.md --------------------------------------------------------------------

PART_ORDER = ("throughput", "tls", "memory", "routing", "queue")

SKELETON = f"""# Performance

How fast mailhop moves mail compared with Postfix on the same machine, how routing
scales with the number of send connectors, and how the queue behaves when it holds
a million deferred messages. Everything here is produced by `make bench`
(`bench/run.py`, `bench/routing.py`, `bench/queue_scale.py`); the section
**Results** is regenerated by those scripts, the rest of this page is written by hand.

## Results

{BEGIN}
{END}
"""


def _part_markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:part {name} -->", f"<!-- bench:part-end {name} -->"


def update_report(path: Path, part: str, body: str) -> None:
    """Replace ``part`` inside the generated region of ``path``; everything else stays."""
    text = path.read_text(encoding="utf-8") if path.exists() else SKELETON
    if BEGIN not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Results\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    region, tail = rest.split(END, 1)
    parts: dict[str, str] = {}
    for name in set(PART_ORDER) | set(re.findall(r"<!-- bench:part (\S+) -->", region)):
        start, stop = _part_markers(name)
        if start in region and stop in region:
            parts[name] = region.split(start, 1)[1].split(stop, 1)[0].strip("\n")
    parts[part] = body.strip("\n")
    order = [p for p in PART_ORDER if p in parts] + sorted(p for p in parts if p not in PART_ORDER)
    blocks = []
    for name in order:
        start, stop = _part_markers(name)
        blocks.append(f"{start}\n{parts[name]}\n{stop}")
    new_region = "\n" + "\n\n".join(blocks) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(head + BEGIN + new_region + END + tail, encoding="utf-8")
    os.replace(tmp, path)


# --- mailhop configuration -----------------------------------------------------------------


def mailhop_sections() -> set[str]:
    """Configuration sections this build of mailhop knows (the admin API is recent)."""
    from mailhop.config import Settings
    return set(Settings.model_fields)


@dataclass
class Durability:
    synchronous: int
    journal_mode: str

    @property
    def ok(self) -> bool:
        return self.synchronous >= 2 and self.journal_mode.lower() in ("wal", "delete", "truncate", "persist")

    def __str__(self) -> str:
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return f"SQLite synchronous={names.get(self.synchronous, self.synchronous)}, journal_mode={self.journal_mode}"


def store_durability(scratch: Path) -> Durability:
    """The durability settings of the connection mailhop's SQLite store opens.

    Uses the store's own ``connect`` on a scratch file, so a change in src/ that
    weakens durability (synchronous=OFF/NORMAL, an in-memory journal) shows here.
    """
    from mailhop.store.sqlite import SqliteDialect

    scratch.parent.mkdir(parents=True, exist_ok=True)
    conn = SqliteDialect(scratch).connect()
    try:
        sync = int(conn.execute("PRAGMA synchronous").fetchone()[0])
        journal = str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()
    for suffix in ("", "-wal", "-shm"):
        Path(str(scratch) + suffix).unlink(missing_ok=True)
    return Durability(sync, journal)


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
