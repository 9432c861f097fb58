"""e2e fixtures: ``mailhop serve`` subprocesses, a real Postfix smart host, a capture."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mailhop import Mailhop
from tests.support.net import free_port
from tests.support.postfix import Listener, Postfix
from tests.support.sink import Sink

pytestmark = pytest.mark.e2e


@pytest.fixture
def capture() -> Iterator[Sink]:
    """Where the smart host hands mail: the recipient domains' servers, in one."""
    sink = Sink().start()
    yield sink
    sink.stop()


@pytest.fixture
def postfix_factory(tmp_path: Path, capture: Sink) -> Iterator[Callable[..., Postfix]]:
    started: list[Postfix] = []

    def make(*hostnames: str, **kwargs: Any) -> Postfix:
        listeners = [Listener(free_port(), name) for name in (hostnames or ("relay.contoso.test",))]
        # Postfix's unprivileged daemons must reach their directories: pytest's tmp_path is
        # private to root, so the instance lives in a folder of its own under /tmp.
        root = Path(tempfile.mkdtemp(prefix="mailhop-postfix-"))
        root.chmod(0o755)
        pf = Postfix(root, listeners, f"[127.0.0.1]:{capture.port}", **kwargs)
        started.append(pf)
        return pf.start()

    yield make
    for pf in started:
        pf.stop()
        shutil.rmtree(pf.root, ignore_errors=True)


@pytest.fixture
def mailhop_factory(tmp_path: Path) -> Iterator[Callable[..., Mailhop]]:
    started: list[Mailhop] = []

    def make(name: str = "EXCH01", **sections: Any) -> Mailhop:
        m = Mailhop(tmp_path / f"mailhop-{name}-{len(started)}", name=name, fqdn=f"{name.lower()}.contoso.test",
                    **sections)
        started.append(m)
        return m

    yield make
    for m in started:
        m.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        factory = item.funcargs.get("mailhop_factory") if hasattr(item, "funcargs") else None
        if factory is not None:
            for closure in getattr(factory, "__closure__", None) or ():
                value = closure.cell_contents
                if isinstance(value, list):
                    for m in value:
                        if isinstance(m, Mailhop):
                            report.sections.append((f"mailhop {m.root.name} log", m.log()[-6000:]))
