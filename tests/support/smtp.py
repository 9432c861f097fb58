"""Submitting mail the way clients do: swaks (a peer no one here wrote) or smtplib."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass


@dataclass
class SwaksResult:
    returncode: int
    output: str

    @property
    def queued_id(self) -> str | None:
        for line in self.output.splitlines():
            if "queued as" in line:
                return line.rsplit("queued as", 1)[1].strip()
        return None


def swaks(port: int, *args: str, server: str = "127.0.0.1", timeout: float = 60) -> SwaksResult:
    if shutil.which("swaks") is None:
        raise RuntimeError("swaks is not installed: run 'make test' (it installs Debian's swaks)")
    result = subprocess.run(["swaks", "--server", f"{server}:{port}", *args],
                            capture_output=True, text=True, timeout=timeout)
    return SwaksResult(result.returncode, result.stdout + result.stderr)
