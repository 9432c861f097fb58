"""Throughput of mailhop against Postfix on loopback: the same load, alternating A B A B.

For every scenario (message size x parallel SMTP sessions) and round, one throw-away
Postfix instance and then one fresh ``mailhop serve`` each relay the same load from
``smtp-source`` to an ``smtp-sink`` of their own, all on 127.0.0.1:

    smtp-source -s SESSIONS -m MESSAGES -l BYTES --> system under test --> smtp-sink -c

Measured for each system and round:
- accepted msg/s: MESSAGES / wall time of smtp-source (it exits after its last 250);
- end-to-end msg/s: MESSAGES / time from starting smtp-source until the sink's running
  counter (``smtp-sink -c``, read from its stdout as it goes) reaches MESSAGES;
- latency to delivery, p50/p99: Postfix's ``delay=`` of every ``status=sent`` line of
  its maillog (from queue-file creation at the first RCPT TO to the sink's reply; it
  includes DATA and the queue-file fsync, so it slightly overstates 250 -> delivery);
  mailhop: SEND minus RECEIVE timestamp of its tracking log (RECEIVE is written right
  after the commit, before the 250);
- peak memory of the whole system (Postfix: master and all its children; mailhop: its
  process tree): sum of VmHWM and sum of Pss, sampled (see benchlib);
- CPU seconds per 1,000 messages: CPU of the system's process tree from the moment
  the load starts until the sink has every message (start-up is not counted).
Then the ratio mailhop/Postfix of end-to-end msg/s per round and its median.  In the
4 KiB, 20 sessions scenario a third system runs each round, ``mailhop+DKIM``: the same
mailhop with a DKIM signing config for the sender's domain (RSA 2048 and Ed25519, both
signatures on every message), and the cost of signing is 1 - its rate / mailhop's.

Nothing system-wide changes: Postfix runs from its own config, queue and data
directories under the work directory and is stopped (and the sinks killed) whatever
way the run ends.  Run as root (Postfix's master needs it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import (
    MAILHOP,
    MASTER_SERVICES,
    REPO,
    Cleanup,
    MemorySampler,
    fmt,
    free_port,
    host_busy,
    install_signal_handlers,
    machine,
    machine_line,
    mailhop_sections,
    markdown_table,
    median,
    own_cpu,
    percentile,
    proc_stat,
    rmtree,
    smtp_banner,
    src_digest,
    stop_process,
    store_durability,
    text_table,
    to_toml,
    tree_cpu,
    update_report,
    wait_until,
)

SENDER = "sender@bench.test"  # smtp-source writes it as From: too, so the signed variant signs each message
SIGNED = "mailhop+DKIM"
# The signed variant runs in this scenario only (the measure of what signing costs).
SIGNING_SCENARIO = (4, 20)
RECIPIENT = "rcpt@bench.test"

# --- the sink ------------------------------------------------------------------------------


class Sink:
    """``smtp-sink -c`` on loopback; its running counter tells when every message arrived."""

    COUNTER = re.compile(rb"mesg=(\d+)")

    def __init__(self, directory: Path, cleanup: Cleanup) -> None:
        self.port = free_port()
        self.count = 0
        self._changed = threading.Condition()
        directory.mkdir(parents=True, exist_ok=True)
        self._err = open(directory / "smtp-sink.err", "wb")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=self._err, start_new_session=True,
        )
        self.close = cleanup.push(f"smtp-sink {self.proc.pid}", self.stop)
        self._reader = threading.Thread(target=self._read, name="sink-reader", daemon=True)
        self._reader.start()
        wait_until(lambda: self.proc.poll() is not None or smtp_banner("127.0.0.1", self.port), 10, "smtp-sink")
        if self.proc.poll() is not None:
            raise RuntimeError(f"smtp-sink exited at start (status {self.proc.returncode})")

    def command(self) -> list[str]:
        return ["smtp-sink", "-c", "-u", "postfix", f"127.0.0.1:{self.port}", "1000"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        tail = b""
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            tail = (tail + chunk)[-256:]
            counts = self.COUNTER.findall(tail)
            if counts:
                with self._changed:
                    self.count = max(self.count, int(counts[-1]))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_count(self, target: int, deadline: float) -> float | None:
        """monotonic() when the counter reached ``target``, or None at ``deadline``."""
        with self._changed:
            while self.count < target:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    return None
                self._changed.wait(min(left, 0.5))
            return time.monotonic()

    def cpu(self) -> float:
        st = proc_stat(self.proc.pid)
        return st[1] if st else 0.0

    def stop(self) -> None:
        stop_process(self.proc, grace=5)
        self._reader.join(5)
        self._err.close()


# --- the systems under test -------------------------------------------------------------------


def postfix_tuning(sessions: int, concurrency: int) -> dict[str, tuple[str, str]]:
    """Postfix settings that differ from its defaults for throughput, with the reason."""
    return {
        "in_flow_delay": ("0s", "no 1 s pause of smtpd when mail arrives faster than it leaves (mailhop has no such brake)"),
        "default_process_limit": (str(max(200, 2 * sessions + concurrency + 50)),
                                  "room for one smtpd per session plus the smtp clients (default 100)"),
        "smtpd_client_connection_count_limit": ("0", "no per-client connection cap (loopback is exempt anyway via mynetworks)"),
        "smtpd_peername_lookup": ("no", "no reverse DNS of 127.0.0.1 (mailhop does none)"),
        "initial_destination_concurrency": (str(concurrency), "no slow start towards the sink"),
        "default_destination_concurrency_limit": (str(concurrency), "same outbound concurrency as mailhop's max_per_domain_outbound_connections"),
        "smtp_destination_concurrency_limit": (str(concurrency), "the same, for the smtp transport"),
        "delay_logging_resolution_limit": ("3", "millisecond resolution of delay= in the log (logging only)"),
    }


POSTFIX_PLUMBING = {
    "compatibility_level": "3.6",
    "command_directory": "/usr/sbin",
    "daemon_directory": "/usr/lib/postfix/sbin",
    "shlib_directory": "/usr/lib/postfix",
    "meta_directory": "/etc/postfix",
    "mail_owner": "postfix",
    "setgid_group": "postdrop",
    "myhostname": "postfix.bench.test",
    "mydomain": "bench.test",
    "myorigin": "$myhostname",
    "mydestination": "",
    "inet_interfaces": "loopback-only",
    "inet_protocols": "ipv4",
    "mynetworks": "127.0.0.0/8",
    "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
    "smtp_dns_support_level": "disabled",
    "alias_maps": "",
    "alias_database": "",
    "biff": "no",
}


@dataclass
class Outcome:
    latencies_ms: list[float] = field(default_factory=list)
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: int = 0


class Postfix:
    name = "Postfix"

    def __init__(self, root: Path, sessions: int, concurrency: int, cleanup: Cleanup) -> None:
        self.root = root
        self.sessions = sessions
        self.concurrency = concurrency
        self.cleanup = cleanup
        self.port = 0
        self.master_pid = 0
        self.close: Callable[[], None] = lambda: None  # stops the instance once (set by start)

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def maillog(self) -> Path:
        return self.root / "maillog"

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["postfix", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=60)

    def start(self, sink_port: int) -> int:
        for d in ("conf", "queue", "data"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        os.chown(self.root / "data", *_postfix_ids())
        self.port = free_port()
        main = dict(POSTFIX_PLUMBING)
        main.update({
            "queue_directory": str(self.root / "queue"),
            "data_directory": str(self.root / "data"),
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(self.root),
            "relayhost": f"[127.0.0.1]:{sink_port}",
        })
        main.update({k: v for k, (v, _) in postfix_tuning(self.sessions, self.concurrency).items()})
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        (self.conf / "master.cf").write_text(f"127.0.0.1:{self.port} inet n - n - - smtpd\n" + MASTER_SERVICES)
        self.close = self.cleanup.push(f"Postfix in {self.root}", self.stop)
        result = self._postfix("start")
        if result.returncode != 0:
            raise RuntimeError(f"postfix failed to start: {result.stdout}{result.stderr}\n{self._log()}")
        pidfile = self.root / "queue" / "pid" / "master.pid"
        wait_until(pidfile.exists, 30, "Postfix's master.pid")
        self.master_pid = int(pidfile.read_text().split()[0])
        wait_until(lambda: smtp_banner("127.0.0.1", self.port), 30, f"Postfix on port {self.port}")
        return self.master_pid

    def _log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def delivered_count(self) -> int:
        return self._log().count(" status=sent ")

    def outcome(self) -> Outcome:
        out = Outcome()
        for line in self._log().splitlines():
            if "postfix/smtp[" in line and f"to=<{RECIPIENT}>" in line:
                status = re.search(r" status=(\w+)", line)
                if status and status.group(1) == "sent":
                    out.delivered += 1
                    m = re.search(r" delay=([\d.]+)", line)
                    if m:
                        out.latencies_ms.append(float(m.group(1)) * 1000)
                elif status and status.group(1) == "deferred":
                    out.deferred += 1
                elif status:
                    out.failed += 1
            if re.search(r": (fatal|panic|error):", line):
                out.errors.append(line)
            elif ": warning:" in line:
                out.warnings += 1
        return out

    def stop(self) -> None:
        if not self.master_pid:
            self._postfix("stop")
            return
        result = self._postfix("stop")
        gone = _wait_gone(self.master_pid, 20)
        if result.returncode != 0 or not gone:
            self._postfix("abort")
            if not _wait_gone(self.master_pid, 10):
                os.kill(self.master_pid, 9)
                _wait_gone(self.master_pid, 10)
        self.master_pid = 0

    @staticmethod
    def version() -> str:
        return subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True).stdout.strip()


def _postfix_ids() -> tuple[int, int]:
    import pwd
    pw = pwd.getpwnam("postfix")
    return pw.pw_uid, pw.pw_gid


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):
            return True
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def mailhop_config(root: Path, port: int, concurrency: int, workers: int) -> dict[str, object]:
    config: dict[str, object] = {
        "server": {"name": "BENCH01", "fqdn": "mailhop.bench.test", "data_dir": str(root / "data"),
                   "workers": workers},
        "receive_connectors": [{"name": "Bench Receive", "bind": f"127.0.0.1:{port}",
                                "remote_ip_ranges": ["127.0.0.0/8"]}],
        # The server's limit: mailhop shares it out among its workers (workers.share).
        "delivery": {"max_per_domain_outbound_connections": concurrency},
        "tracking": {"enabled": True},
    }
    if "admin" in mailhop_sections():
        config["admin"] = {"enabled": False}  # no web console in the measurement (Postfix has none)
    return config


class Mailhop:
    name = "mailhop"

    def __init__(self, root: Path, concurrency: int, workers: int, cleanup: Cleanup, signing: bool = False) -> None:
        self.signing = signing
        if signing:
            self.name = SIGNED
        # What a variant (bench/tls.py) adds to the configuration, and the send connector it uses
        # instead of the smart-host connector to the sink ("{port}" is the sink's port).
        self.extra_config: dict[str, dict[str, object]] = {}
        self.connector_args: list[str] | None = None
        self.root = root
        self.concurrency = concurrency
        self.workers = workers
        self.cleanup = cleanup
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.config_path = root / "mailhop.toml"
        self.log_path = root / "serve.log"
        self.close: Callable[[], None] = lambda: None  # stops the server once (set by start)

    def cli(self, *args: str) -> str:
        result = subprocess.run([MAILHOP, "--config", str(self.config_path), *args],
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"mailhop {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self, sink_port: int) -> int:
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        config = mailhop_config(self.root, self.port, self.concurrency, self.workers)
        for section, values in self.extra_config.items():
            config[section] = {**config.get(section, {}), **values}  # type: ignore[dict-item]
        self.config_path.write_text(to_toml(config))
        if self.connector_args is None:
            self.cli("connector", "new", "Sink", "--dns-routing-enabled", "false",
                     "--smart-hosts", f"[127.0.0.1]:{sink_port}", "--address-spaces", "*")
        else:
            self.cli("connector", "new", *(a.replace("{port}", str(sink_port)) for a in self.connector_args))
        if self.signing:  # the defaults: an RSA 2048 and an Ed25519 signature on every message
            self.cli("dkim", "new", SENDER.split("@")[1])
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen([MAILHOP, "--config", str(self.config_path), "serve"],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1"))
        log.close()
        self.close = self.cleanup.push(f"mailhop serve {self.proc.pid}", self.stop)
        proc = self.proc
        wait_until(lambda: proc.poll() is not None or smtp_banner("127.0.0.1", self.port), 60, "mailhop to listen")
        if proc.poll() is not None:
            raise RuntimeError(f"mailhop exited at start:\n{self.log()}")
        return proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _events(self) -> list[dict[str, object]]:
        folder = self.root / "data" / "logs" / "MessageTracking"
        events = []
        for path in sorted(folder.glob("MSGTRK*.log")) if folder.exists() else []:
            for line in path.read_text(errors="replace").splitlines():
                if line.strip():
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        continue
        return events

    def delivered_count(self) -> int:
        return sum(1 for e in self._events() if e.get("EventId") == "SEND")

    def outcome(self) -> Outcome:
        out = Outcome()
        received: dict[object, float] = {}
        sent: dict[object, float] = {}
        for e in self._events():
            event = e.get("EventId")
            ts = datetime.fromisoformat(str(e["Timestamp"])).timestamp()
            if event == "RECEIVE":
                received[e.get("InternalMessageId")] = ts
            elif event == "SEND":
                sent[e.get("InternalMessageId")] = ts
                out.delivered += 1
            elif event == "DEFER":
                out.deferred += 1
            elif event == "FAIL":
                out.failed += 1
        out.latencies_ms = [(sent[i] - received[i]) * 1000 for i in sent if i in received]
        for line in self.log().splitlines():
            if re.search(r" (ERROR|CRITICAL) |^Traceback", line):
                out.errors.append(line)
            elif " WARNING " in line:
                out.warnings += 1
        return out

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, grace=45)
            self.proc = None


# --- one round ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    size_kib: int
    sessions: int

    @property
    def title(self) -> str:
        return f"{self.size_kib} KiB, {self.sessions} sessions"


@dataclass
class RoundResult:
    system: str
    round: int
    messages: int
    accepted_rate: float | None = None
    e2e_rate: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    peak_rss_mb: float | None = None
    peak_pss_mb: float | None = None
    processes: int = 0
    cpu_per_1k: float | None = None
    sink_count: int = 0
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    warnings: int = 0
    other_cores: float | None = None
    problem: str | None = None

    @property
    def lost(self) -> int:
        return max(0, self.messages - self.sink_count)


def run_round(system: Postfix | Mailhop, scenario: Scenario, rnd: int, messages: int,
              workdir: Path, timeout: float, cleanup: Cleanup,
              sink_factory: Callable[[Path, Cleanup], Sink] = Sink) -> RoundResult:
    result = RoundResult(system.name, rnd, messages)
    sink = sink_factory(system.root, cleanup)
    try:
        root_pid = system.start(sink.port)
        time.sleep(1.0)  # let start-up work (recovery, first config poll) finish before counting CPU
        cpu_before = tree_cpu(root_pid)
        busy_before, own_before, sink_before = host_busy(), own_cpu(), sink.cpu()
        source_cmd = ["smtp-source", "-s", str(scenario.sessions), "-m", str(messages),
                      "-l", str(scenario.size_kib * 1024), "-f", SENDER, "-t", RECIPIENT,
                      f"127.0.0.1:{system.port}"]
        with MemorySampler(root_pid) as mem:
            start = time.monotonic()
            deadline = start + timeout
            source = subprocess.Popen(source_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=True)
            undo_source = cleanup.push(f"smtp-source {source.pid}", lambda: stop_process(source, 2, 9))
            try:
                out, err = source.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_process(source, 2, 9)
                out, err = source.communicate()
                result.problem = f"smtp-source did not finish within {timeout:.0f}s"
            undo_source()
            source_time = time.monotonic() - start
            if source.returncode != 0 and result.problem is None:
                text = (err or out).decode(errors="replace").strip().splitlines()
                result.problem = f"smtp-source exited {source.returncode}: {' / '.join(text[-3:])}"
            if result.problem is None:
                result.accepted_rate = messages / source_time
            if result.problem is not None:  # not everything was accepted: no point waiting long
                deadline = min(deadline, time.monotonic() + 30)
            done = sink.wait_count(messages, deadline)
            cpu_after = tree_cpu(root_pid)
            busy = host_busy() - busy_before
            harness = (own_cpu() - own_before) + (sink.cpu() - sink_before)
            window = time.monotonic() - start
        # CPU the machine spent on anything but the system, smtp-source, smtp-sink and this script:
        # other users of the machine, which make the round noisy.
        result.other_cores = max(0.0, busy - (cpu_after - cpu_before) - harness) / window
        if done is not None:
            result.e2e_rate = messages / (done - start)
            result.cpu_per_1k = (cpu_after - cpu_before) / messages * 1000
        elif result.problem is None:
            result.problem = f"the sink had {sink.count} of {messages} messages after {timeout:.0f}s"
        result.sink_count = sink.count
        # The log lines of the last deliveries may trail the sink's counter by a moment.
        try:
            wait_until(lambda: system.delivered_count() >= sink.count, 15, "the delivery log", step=0.2)
        except RuntimeError:
            pass
        outcome = system.outcome()
        result.p50_ms = percentile(outcome.latencies_ms, 50)
        result.p99_ms = percentile(outcome.latencies_ms, 99)
        result.delivered, result.deferred, result.failed = outcome.delivered, outcome.deferred, outcome.failed
        result.errors, result.warnings = outcome.errors, outcome.warnings
        result.peak_rss_mb = mem.peak_hwm_kb / 1024
        result.peak_pss_mb = mem.peak_pss_kb / 1024
        result.processes = mem.max_processes
    finally:
        system.close()
        sink.close()
    return result


# --- reporting ---------------------------------------------------------------------------------

COLUMNS = ("round", "system", "accepted msg/s", "end-to-end msg/s", "p50 ms", "p99 ms",
           "peak RSS MB", "peak PSS MB", "CPU s/1k msg", "delivered", "deferred", "errors", "other load")


def row(r: RoundResult, label: str | None = None) -> list[str]:
    return [label or str(r.round), r.system, fmt(r.accepted_rate), fmt(r.e2e_rate), fmt(r.p50_ms),
            fmt(r.p99_ms), fmt(r.peak_rss_mb), fmt(r.peak_pss_mb), fmt(r.cpu_per_1k, 2),
            f"{r.sink_count:,}/{r.messages:,}", str(r.deferred), str(len(r.errors)), fmt(r.other_cores, 2)]


def median_row(results: Sequence[RoundResult], system: str) -> list[str]:
    mine = [r for r in results if r.system == system]
    m = RoundResult(system, 0, mine[0].messages if mine else 0)
    for attr in ("accepted_rate", "e2e_rate", "p50_ms", "p99_ms", "peak_rss_mb", "peak_pss_mb", "cpu_per_1k",
                 "other_cores"):
        setattr(m, attr, median(getattr(r, attr) for r in mine))
    m.sink_count = sum(r.sink_count for r in mine)
    m.messages = sum(r.messages for r in mine)
    m.deferred = sum(r.deferred for r in mine)
    m.errors = [e for r in mine for e in r.errors]
    return row(m, "median")


def ratios(results: Sequence[RoundResult], top: str = "mailhop", bottom: str = "Postfix") -> list[float | None]:
    """Per round: end-to-end rate of ``top`` / that of ``bottom``."""
    by_round: dict[int, dict[str, RoundResult]] = {}
    for r in results:
        by_round.setdefault(r.round, {})[r.system] = r
    out: list[float | None] = []
    for rnd in sorted(by_round):
        b, t = by_round[rnd].get(bottom), by_round[rnd].get(top)
        out.append(t.e2e_rate / b.e2e_rate if b and t and b.e2e_rate and t.e2e_rate else None)
    return out


def signing_text(results: Sequence[RoundResult]) -> str | None:
    """What signing costs: 1 - (signed / unsigned end-to-end rate), per round and its median."""
    values = ratios(results, SIGNED, "mailhop")
    if not any(v is not None for v in values):
        return None
    costs = [None if v is None else (1 - v) * 100 for v in values]
    per_round = ", ".join(f"round {i + 1}: {fmt(c, 1)}%" for i, c in enumerate(costs))
    return f"cost of DKIM signing (both algorithms), end-to-end msg/s: {per_round}; median {fmt(median(costs), 1)}%"


def systems_of(results: Sequence[RoundResult]) -> list[str]:
    return [s for s in ("Postfix", "mailhop", SIGNED) if any(r.system == s for r in results)]


def ratio_text(values: Sequence[float | None]) -> str:
    per_round = ", ".join(f"round {i + 1}: {fmt(v, 2)}" for i, v in enumerate(values))
    return f"{per_round}; median {fmt(median(values), 2)}"


def scenario_text(scenario: Scenario, results: Sequence[RoundResult]) -> str:
    rows = [row(r) for r in results] + [median_row(results, s) for s in systems_of(results)]
    out = [text_table(COLUMNS, rows), f"ratio mailhop/Postfix, end-to-end msg/s: {ratio_text(ratios(results))}"]
    signing = signing_text(results)
    if signing:
        out.append(signing)
    for r in results:
        if r.problem:
            out.append(f"  round {r.round} {r.system}: {r.problem}")
        for line in r.errors[:3]:
            out.append(f"  round {r.round} {r.system} log: {line[:200]}")
    return "\n".join(out)


def markdown(args: argparse.Namespace, info: dict[str, str], durability: str,
             results: dict[Scenario, list[RoundResult]], concurrency: int, sessions: Sequence[int],
             workers: int) -> str:
    cmd = "python bench/run.py " + " ".join(args.argv) if args.argv else "python bench/run.py"
    out = [
        "### Throughput: mailhop and Postfix relaying to smtp-sink",
        "",
        f"Machine: {machine_line(info)}.",
        "",
        f"Run: `{cmd}`: {args.rounds} round(s) per scenario, {args.messages:,} messages per round "
        f"(one recipient each, one message per SMTP session as smtp-source sends them), "
        f"Postfix then mailhop in every round, each a fresh instance with an empty queue and its own "
        f"smtp-sink; outbound concurrency {concurrency} on both sides.",
        "",
        f"Durability: mailhop {durability} (checked by the harness on the store's own connection), "
        "250 only after the commit; Postfix with its defaults (cleanup fsyncs each queue file before 250).",
        "",
    ]
    summary = []
    for scenario, res in results.items():
        out += [f"#### {scenario.title}", ""]
        rows = [row(r) for r in res] + [median_row(res, s) for s in systems_of(res)]
        out.append(markdown_table(COLUMNS, rows, right=range(2, len(COLUMNS))))
        out += ["", f"Ratio mailhop/Postfix, end-to-end msg/s: {ratio_text(ratios(res))}.", ""]
        signing = signing_text(res)
        if signing:
            out += [f"{signing[0].upper()}{signing[1:]} ({SIGNED}: the same mailhop with "
                    f"`mailhop dkim new bench.test`, RSA 2048 and Ed25519, signing every message).", ""]
        notes = [f"round {r.round} {r.system}: {r.problem}" for r in res if r.problem]
        notes += [f"round {r.round} {r.system}: {len(r.errors)} error line(s) in its log, first: `{r.errors[0][:160]}`"
                  for r in res if r.errors]
        if notes:
            out += ["Problems:", "", *[f"- {n}" for n in notes], ""]
        med = {s: {a: median(getattr(r, a) for r in res if r.system == s)
                   for a in ("accepted_rate", "e2e_rate", "p99_ms", "peak_pss_mb", "cpu_per_1k")}
               for s in ("Postfix", "mailhop")}
        summary.append([scenario.title, fmt(med["Postfix"]["e2e_rate"]), fmt(med["mailhop"]["e2e_rate"]),
                        fmt(median(ratios(res)), 2), fmt(med["Postfix"]["accepted_rate"]),
                        fmt(med["mailhop"]["accepted_rate"]), fmt(med["Postfix"]["p99_ms"]),
                        fmt(med["mailhop"]["p99_ms"]), fmt(med["Postfix"]["cpu_per_1k"], 2),
                        fmt(med["mailhop"]["cpu_per_1k"], 2)])
    out += ["#### Summary (medians over the rounds)", "",
            markdown_table(("scenario", "Postfix e2e msg/s", "mailhop e2e msg/s", "ratio", "Postfix accepted msg/s",
                            "mailhop accepted msg/s", "Postfix p99 ms", "mailhop p99 ms", "Postfix CPU s/1k",
                            "mailhop CPU s/1k"), summary, right=range(1, 10)), ""]
    tuning = postfix_tuning(max(sessions), concurrency)
    out += [
        "#### Settings",
        "",
        "Postfix settings that differ from its defaults (beyond the plumbing of a throw-away instance: "
        "its own directories, `relayhost = [127.0.0.1]:<sink>`, `mydestination` empty, "
        "`mynetworks = 127.0.0.0/8`, `compatibility_level = 3.6`, logging to `maillog_file`):",
        "",
        markdown_table(("parameter", "value", "why"),
                       [[f"`{k}`", f"`{v}`", why] for k, (v, why) in tuning.items()]),
        "",
        "(`default_process_limit` is computed as max(200, 2 x sessions + concurrency + 50); the value shown "
        "is for the largest session count of the run.)",
        "",
        f"mailhop: defaults except `[server] workers = {workers}` (worker processes sharing the listening "
        "socket, as Postfix runs one smtpd per session), `[delivery] max_per_domain_outbound_connections = "
        f"{concurrency}` (for the whole server, shared out among the workers; as Postfix), "
        "`[admin] enabled = false` (no web console), one receive "
        "connector on 127.0.0.1 relaying for 127.0.0.0/8, one send connector `Sink` "
        "(`--dns-routing-enabled false --smart-hosts [127.0.0.1]:<sink> --address-spaces '*'`), "
        "tracking log on, log level INFO, uvloop when installed.",
        "",
        "Columns: *accepted* = messages / wall time of smtp-source; *end-to-end* = messages / time until "
        "the sink counted the last one; *p50/p99* = latency to delivery (Postfix: `delay=`, from the first "
        "RCPT TO, so it includes DATA and the fsync; mailhop: tracking SEND - RECEIVE, from the commit); "
        "*peak RSS* = largest sum of VmHWM over the live processes of the system, *peak PSS* = the same "
        "with shared pages divided among their users (fairer to Postfix's many processes); *CPU s/1k msg* = "
        "user+system CPU of the whole process tree from the start of the load to the last delivery, per "
        "1,000 messages; *delivered* = sink count / messages sent; *errors* = error lines in the system's log; "
        "*other load* = cores busy with anything but the system under test, smtp-source, smtp-sink and the "
        "harness during the round (other users of the machine: above ~0.1 the round is noisy).",
    ]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], prog="bench/run.py")
    p.add_argument("--rounds", type=int, default=None, help="rounds per scenario (default 3; --quick: 2)")
    p.add_argument("--messages", type=int, default=None, help="messages per round (default 5000; --quick: 2000)")
    p.add_argument("--sizes", default=None, help="message sizes in KiB (default 1,4,100; --quick: 4)")
    p.add_argument("--sessions", default=None, help="parallel SMTP sessions (default 20,100; --quick: 20)")
    p.add_argument("--concurrency", type=int, default=20,
                   help="outbound connections to the sink, both systems (default 20, mailhop's default)")
    p.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4),
                   help="mailhop's [server] workers (default: one per core, at most 4)")
    p.add_argument("--quick", action="store_true", help="a reduced run: 2 rounds, 2000 messages, 4 KiB, 20 sessions")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds one system may take for one round (default max(180, messages/10))")
    p.add_argument("--only", choices=("postfix", "mailhop"), help="run one system only (no ratios)")
    p.add_argument("--no-signing", dest="signing", action="store_false",
                   help=f"skip the {SIGNED} variant (run in the 4 KiB, 20 sessions scenario)")
    p.add_argument("--workdir", type=Path, default=None, help="where instances live (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, queues) afterwards")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md",
                   help="the report to update (default docs/performance.md); '-' for none")
    args = p.parse_args(argv)
    args.argv = list(argv)
    quick = args.quick
    args.rounds = args.rounds or (2 if quick else 3)
    args.messages = args.messages or (2000 if quick else 5000)
    args.sizes = [int(x) for x in (args.sizes or ("4" if quick else "1,4,100")).split(",")]
    args.sessions = [int(x) for x in (args.sessions or ("20" if quick else "20,100")).split(",")]
    args.timeout = args.timeout or max(180.0, args.messages / 10)
    return args


def preflight() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/run.py: run as root (Postfix's master process needs it); `make bench` uses sudo when needed")
    for tool in ("postfix", "postconf", "smtp-source", "smtp-sink"):
        if not any(Path(d, tool).exists() for d in [*os.environ.get("PATH", "").split(":"), "/usr/sbin"]):
            sys.exit(f"bench/run.py: {tool} is missing: `make bench` installs Debian's postfix")
    if "/usr/sbin" not in os.environ.get("PATH", "").split(":"):
        os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin"


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    preflight()
    install_signal_handlers()
    cleanup = Cleanup()
    own_workdir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mailhop-bench-")) if own_workdir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o755)  # Postfix's unprivileged daemons must reach their queue
    if own_workdir and not args.keep:
        cleanup.push(f"work directory {workdir}", lambda: rmtree(workdir))
    info = machine(workdir)
    durability = store_durability(workdir / "durability-check" / "probe.db")
    print(f"machine: {machine_line(info)}")
    print(f"mailhop store: {durability}; work directory {workdir}")
    if not durability.ok:
        print("WARNING: mailhop's store does not fsync every commit: the comparison with Postfix is not fair",
              file=sys.stderr)
    scenarios = [Scenario(size, s) for size in args.sizes for s in args.sessions]
    systems = ["postfix", "mailhop"] if args.only is None else [args.only]
    if args.signing and "mailhop" in systems:
        systems.append("signed")
    results: dict[Scenario, list[RoundResult]] = {}
    interrupted = False
    try:
        for scenario in scenarios:
            results[scenario] = []
            for rnd in range(1, args.rounds + 1):
                for which in systems:
                    if which == "signed" and (scenario.size_kib, scenario.sessions) != SIGNING_SCENARIO:
                        continue
                    root = workdir / f"{scenario.size_kib}k-{scenario.sessions}s" / f"round{rnd}-{which}"
                    system: Postfix | Mailhop = (Postfix(root, scenario.sessions, args.concurrency, cleanup)
                                                 if which == "postfix" else Mailhop(root, args.concurrency, args.workers,
                                                                                    cleanup, which == "signed"))
                    print(f"[{scenario.title}] round {rnd}/{args.rounds}: {system.name} ...", flush=True)
                    r = run_round(system, scenario, rnd, args.messages, workdir, args.timeout, cleanup)
                    results[scenario].append(r)
                    print(f"    accepted {fmt(r.accepted_rate)} msg/s, end-to-end {fmt(r.e2e_rate)} msg/s, "
                          f"p50 {fmt(r.p50_ms)} ms, p99 {fmt(r.p99_ms)} ms, RSS {fmt(r.peak_rss_mb)} MB, "
                          f"PSS {fmt(r.peak_pss_mb)} MB, CPU {fmt(r.cpu_per_1k, 2)} s/1k, "
                          f"sink {r.sink_count}/{r.messages}, other load {fmt(r.other_cores, 2)} cores" + (f"  PROBLEM: {r.problem}" if r.problem else ""),
                          flush=True)
                    if not args.keep:
                        rmtree(root)
            print()
            print(f"== {scenario.title} ==")
            print(scenario_text(scenario, results[scenario]))
            print()
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted: stopping every instance", file=sys.stderr)
    finally:
        cleanup.run()
    results = {s: r for s, r in results.items() if r}
    if src_digest() not in info["mailhop"]:
        info["mailhop"] += f" -> {src_digest()}: src/ CHANGED DURING THE RUN"
        print("WARNING: src/ changed during the run; rounds may have measured different code", file=sys.stderr)
    if results and str(args.out) != "-" and not interrupted:
        update_report(args.out, "throughput",
                      markdown(args, info, str(durability), results, args.concurrency, args.sessions, args.workers))
        print(f"results written to {args.out}")
    if args.keep:
        print(f"work directory kept: {workdir}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
