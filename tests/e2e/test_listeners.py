"""Listeners fail fast: a listener that cannot be opened stops ``mailhop serve`` with one line
naming it and why, before any SMTP connection is accepted; ``serve --check`` finds it first."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.mailhop import MAILHOP, Mailhop
from tests.support.net import free_port, port_open


@pytest.fixture
def taken() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def serve(m: Mailhop, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MAILHOP, "--config", str(m.config_path), "serve", *args], capture_output=True,
                          text=True, timeout=60)


def test_an_admin_port_in_use_stops_serve_before_smtp_is_accepted(
        mailhop_factory: Callable[..., Mailhop], taken: int) -> None:
    m = mailhop_factory(admin={"bind": f"127.0.0.1:{taken}"})
    result = serve(m)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"mailhop: the admin API cannot listen on 127.0.0.1:{taken}: Address already in use")
    assert "Traceback" not in result.stderr
    assert not port_open("127.0.0.1", m.port)  # the SMTP listener never came up


def test_a_receive_connector_address_in_use_stops_serve_with_workers_too(
        mailhop_factory: Callable[..., Mailhop], taken: int) -> None:
    m = mailhop_factory(server={"workers": 2}, receive_connectors=[{"name": "Busy", "bind": f"127.0.0.1:{taken}"}])
    result = serve(m)
    assert result.returncode == 1
    assert f"mailhop: receive connector 'Busy' cannot listen on 127.0.0.1:{taken}: Address already in use" in \
        result.stderr
    assert "Traceback" not in result.stderr


def test_an_unreadable_certificate_stops_serve(mailhop_factory: Callable[..., Mailhop], tmp_path: Path) -> None:
    m = mailhop_factory(receive_connectors=[{"name": "Tls", "bind": f"127.0.0.1:{free_port()}",
                                             "tls_certificate": str(tmp_path / "missing.pem"),
                                             "tls_key": str(tmp_path / "missing.key")}])
    result = serve(m)
    assert result.returncode == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("mailhop: receive connector 'Tls': tls_certificate/tls_key cannot be loaded"), line


def test_serve_check_reports_listeners_and_permissions_without_starting(
        mailhop_factory: Callable[..., Mailhop], taken: int) -> None:
    m = mailhop_factory()
    ok = serve(m, "--check")
    assert ok.returncode == 0, ok.stdout
    assert ok.stdout.strip().splitlines()[-1].startswith("mailhop serve --check: 0 error(s)")
    m.data_dir.mkdir(parents=True, exist_ok=True)
    m.data_dir.chmod(0o755)
    bad = mailhop_factory(admin={"bind": f"127.0.0.1:{taken}"})
    bad.data_dir.mkdir(parents=True)
    bad.data_dir.chmod(0o755)
    result = serve(bad, "--check")
    assert result.returncode == 1
    assert f"error: the admin API cannot listen on 127.0.0.1:{taken}: Address already in use" in result.stdout
    assert "warning: permissions:" in result.stdout and "directory mode 0755" in result.stdout
    assert not (bad.data_dir / "mailhop.db").exists()  # nothing was started
