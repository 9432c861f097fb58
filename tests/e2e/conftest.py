"""e2e fixtures: ``mailhop serve`` subprocesses, a real Postfix smart host, a capture."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.mailhop import Mailhop
from tests.support.postfix import Postfix, start_throwaway, stop_throwaway
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
        pf = start_throwaway(f"[127.0.0.1]:{capture.port}", hostnames or ("relay.contoso.test",), **kwargs)
        started.append(pf)
        return pf

    yield make
    for pf in started:
        stop_throwaway(pf)


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
