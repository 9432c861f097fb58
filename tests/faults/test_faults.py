"""The short run of the fault checker (``make faults`` is the long one): two cycles of each
fault under load, each on its own servers, with the invariants of ``tests/faults/checker.py``:
nothing acknowledged is lost, duplicates stay within what was in delivery at the faults,
every message ends final, the degraded answers are the right ones (disk full ``452 4.3.1``,
PostgreSQL down ``451 4.3.0``) and the servers recover on their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.checker import FAULTS, disk_full_possible, run_fault, table

pytestmark = pytest.mark.e2e
CYCLES = 2


@pytest.mark.parametrize("name", list(FAULTS))
def test_a_fault_under_load_loses_nothing_and_the_server_recovers_by_itself(name: str, tmp_path: Path) -> None:
    if name == "disk-full" and not disk_full_possible():
        pytest.skip("disk-full mounts a tmpfs: it needs root or password-less sudo")
    row = run_fault(FAULTS[name], CYCLES, seed=16, workdir=tmp_path, log=print)
    report = table([row]) + "".join(f"\n  {note}" for note in row.notes)
    assert row.lost == 0, report
    assert row.duplicated <= row.in_flight, report
    assert row.not_final == 0 and row.recovered, report
    assert row.ok, report  # the degraded answer this fault must give
