"""A throw-away Postfix instance (Debian's package) on loopback, as a real smart host.

Nothing system-wide changes: the instance has its own config, queue and data
directories under a temporary folder and its own listeners.  Each listener can
carry its own ``myhostname`` (so a test can tell which smart host a message went
through from the Received: chain) and relays everything to ``relayhost``.
Recipients listed in ``reject`` get ``550 5.1.1`` from smtpd.  Postfix needs
root to start its master process; without root the tests that need it are skipped.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import free_port, port_open
from tests.support.wait import wait_for

MASTER_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


@dataclass
class Listener:
    port: int
    myhostname: str
    host: str = "127.0.0.1"


@dataclass
class Postfix:
    root: Path
    listeners: list[Listener]
    relayhost: str                      # e.g. "[127.0.0.1]:2626"
    reject: set[str] = field(default_factory=set)
    message_size_limit: int = 50 * 1024 * 1024
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    def _postfix(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Postfix's own umask, whatever this process's is (mailhop's CLI sets 077, run in-process by
        # some tests): the queue directories it creates must be open to its unprivileged daemons.
        return subprocess.run(["postfix", "-c", str(self.conf), *args], capture_output=True, text=True, timeout=60,
                              umask=0o022)

    def write_config(self) -> None:
        for d in ("conf", "queue", "data"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
            (self.root / d).chmod(0o755)
        shutil.chown(self.root / "data", user="postfix")
        access = self.conf / "recipient_access"
        access.write_text("".join(f"{r} 550 5.1.1 User unknown\n" for r in sorted(self.reject)) or "# none\n")
        main = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.root / "queue"),
            "data_directory": str(self.root / "data"),
            "command_directory": "/usr/sbin",
            "daemon_directory": "/usr/lib/postfix/sbin",
            "shlib_directory": "/usr/lib/postfix",
            "meta_directory": "/etc/postfix",
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": self.listeners[0].myhostname,
            "mydomain": "relay.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "relayhost": self.relayhost,
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": f"check_recipient_access texthash:{access}, permit",
            "maillog_file": str(self.root / "maillog"),
            "maillog_file_prefixes": str(self.root),
            "smtp_dns_support_level": "disabled",
            "disable_dns_lookups": "yes",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "smtputf8_enable": "yes",
            "message_size_limit": str(self.message_size_limit),
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "2s",
        }
        main.update(self.extra)
        (self.conf / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in main.items()))
        listeners = "".join(
            f"{lst.host}:{lst.port} inet n - n - - smtpd -o myhostname={lst.myhostname}\n"
            for lst in self.listeners
        )
        (self.conf / "master.cf").write_text(listeners + MASTER_SERVICES)

    def start(self) -> Postfix:
        if os.geteuid() != 0:
            pytest.skip("Postfix's master process needs root")
        if shutil.which("postfix") is None:
            raise RuntimeError("postfix is not installed: run 'make test' (it installs Debian's postfix)")
        self.write_config()
        result = self._postfix("start")
        if result.returncode != 0:
            log = (self.root / "maillog").read_text() if (self.root / "maillog").exists() else ""
            raise RuntimeError(f"postfix failed to start: {result.stdout}{result.stderr}\n{log}")
        for lst in self.listeners:
            wait_for(lambda lst=lst: port_open(lst.host, lst.port), what=f"postfix on {lst.port}")
        return self

    def stop(self) -> None:
        result = self._postfix("stop")
        if result.returncode != 0:
            self._postfix("abort")

    def maillog(self) -> str:
        path = self.root / "maillog"
        return path.read_text() if path.exists() else ""


def start_throwaway(relayhost: str, hostnames: tuple[str, ...] = ("relay.contoso.test",), **kwargs: Any) -> Postfix:
    """A started instance, one listener per name, in a folder of its own under /tmp: pytest's
    tmp_path is private to root, and Postfix's unprivileged daemons must reach their directories."""
    root = Path(tempfile.mkdtemp(prefix="mailhop-postfix-"))
    root.chmod(0o755)
    pf = Postfix(root, [Listener(free_port(), name) for name in hostnames], relayhost, **kwargs)
    try:
        return pf.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def stop_throwaway(pf: Postfix) -> None:
    pf.stop()
    shutil.rmtree(pf.root, ignore_errors=True)
