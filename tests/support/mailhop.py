"""``mailhop serve`` as a subprocess, and the ``mailhop`` CLI against its config.

Each instance gets its own directory with a ``mailhop.toml``, the data
directory, and the server's stderr log (shown when a test fails).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.net import free_port, port_open
from tests.support.wait import wait_for

MAILHOP = str(Path(sys.executable).parent / "mailhop")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def to_toml(config: dict[str, Any]) -> str:
    out: list[str] = []
    for section, body in config.items():
        if isinstance(body, list):
            for item in body:
                out.append(f"[[{section}]]")
                out += [f"{k} = {toml_value(v)}" for k, v in item.items()]
                out.append("")
        else:
            out.append(f"[{section}]")
            out += [f"{k} = {toml_value(v)}" for k, v in body.items()]
            out.append("")
    return "\n".join(out)


class Mailhop:
    def __init__(self, root: Path, name: str = "EXCH01", fqdn: str = "exch01.contoso.test",
                 bind_host: str = "127.0.0.1", **sections: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port(bind_host)
        self.host = bind_host
        config: dict[str, Any] = {
            # One worker unless a test asks for more (the default, "auto", is one per CPU: test_workers).
            "server": {"name": name, "fqdn": fqdn, "data_dir": str(root / "data"), "config_poll_interval": "0.5s",
                       "workers": 1},
            "receive_connectors": [{"name": f"Client Relay {name}", "bind": f"{bind_host}:{self.port}",
                                    "remote_ip_ranges": ["127.0.0.1/32"]}],
            "queue": {"glitch_retry_interval": "1s", "transient_retry_interval": "1s",
                      "message_retry_interval": "1s", "retry_jitter": 0},
            "delivery": {"connect_timeout": "5s", "command_timeout": "30s", "connection_cache_time": "1s",
                         "allow_private_mx": True},  # the test DNS servers answer with loopback addresses
            "admin": {"bind": f"127.0.0.1:{free_port()}"},
        }
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(config.get(key), dict):
                config[key].update(value)
            else:
                config[key] = value
        self.config_path = root / "mailhop.toml"
        self.config_path.write_text(to_toml(config))
        self.log_path = root / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([MAILHOP, "--config", str(self.config_path), *args],
                                capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise AssertionError(f"mailhop {' '.join(args)} failed ({result.returncode}): {result.stderr}")
        return result

    def relay(self, port: int, *options: str, name: str = "Relay") -> None:
        """A send connector for every address (``*``) to the smart host ``[127.0.0.1]:port``."""
        self.cli("connector", "new", name, "--dns-routing-enabled", "false", "--smart-hosts",
                 f"[127.0.0.1]:{port}", "--address-spaces", "*", *options)

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)

    def start(self) -> Mailhop:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([MAILHOP, "--config", str(self.config_path), "serve", "--log-level", "DEBUG"],
                                     stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        wait_for(lambda: port_open(self.host, self.port) or self.proc.poll() is not None,  # type: ignore[union-attr]
                 what="mailhop to listen")
        if self.proc.poll() is not None:
            raise AssertionError(f"mailhop exited at start:\n{self.log()}")
        return self

    def wait_config(self, version: int) -> None:
        """Wait until the running server has loaded connector configuration ``version``."""
        wait_for(lambda: f"(version {version})" in self.log(), what=f"config version {version}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (drain) and wait for the exit status."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """kill -9: no chance to clean up."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def tracking(self) -> list[dict[str, Any]]:
        folder = self.data_dir / "logs" / "MessageTracking"
        events = []
        for path in sorted(folder.glob("MSGTRK*.log")) if folder.exists() else []:
            # Only whole lines: a running server may be writing the last one as it is read.
            complete = path.read_text().split("\n")[:-1]
            events += [json.loads(line) for line in complete if line.strip()]
        return events
