"""Files readable by the server's user only: the data directory holds all queued mail and secrets.

Everything mailhop creates under its data directory is private: directories 0700, files
0600 (the store and its WAL, logs, journals, the spool, the key file, the users file, the
control socket).  ``private_dir`` makes a directory and every missing parent below an
existing one with 0700; ``create_private`` makes a file 0600 if it is missing.  The
``mailhop`` command also sets a umask of 077 for anything else it creates.
``problems`` lists what is wider than that (``serve --check`` prints them, ``serve``
logs them at start); it changes nothing itself.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` and its missing parents, created 0700 (existing ones are left as they are)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue
        os.chmod(directory, DIR_MODE)  # mkdir's mode passes through the umask; this does not
    return path


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        pass


def problems(data_dir: Path, limit: int = 20) -> list[str]:
    """What under ``data_dir`` others than its owner may read (or enter), at most ``limit`` lines."""
    found: list[str] = []
    if not data_dir.exists():
        return found
    for root, dirs, files in os.walk(data_dir):
        for name in [root, *(os.path.join(root, f) for f in files)]:
            try:
                mode = os.lstat(name).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                continue
            if mode & 0o077:
                kind = "directory" if stat.S_ISDIR(mode) else "file"
                want = DIR_MODE if stat.S_ISDIR(mode) else FILE_MODE
                found.append(f"{name}: {kind} mode {stat.S_IMODE(mode):04o}, readable by others "
                             f"(chmod {want:o})")
                if len(found) >= limit:
                    return found
        dirs.sort()
    return found
