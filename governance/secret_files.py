"""Files that hold secrets (keys): private from the first byte, never seen half-written.

One implementation for every key voiceloop keeps on disk (raw-zone keys, the pseudonym key,
the audit key), so each gets the same guarantees.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def secure_dir(folder: Path, *, strict: bool = False) -> None:
    """Create ``folder`` with mode 0700 and tighten it if it exists. Not ``strict``: a shared
    folder we do not own keeps its mode (the files' own 0600 still protects them)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if strict:
        folder.chmod(0o700)
    else:
        with contextlib.suppress(PermissionError):
            folder.chmod(0o700)


def _private_temp(path: Path, text: str) -> str:
    """A fully written, fsynced temp file (mode 0600) beside ``path``; returns its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # mkstemp: mode 0600
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def create_secret(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists; True if this call created it.

    The content is written to a private temp file first and hard-linked into place, so
    concurrent first uses agree on one value and nobody ever reads a half-written file.
    """
    if path.exists():
        return False
    tmp = _private_temp(path, text)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:  # another process created it first: theirs is the one
        return False
    finally:
        os.unlink(tmp)


def replace_secret(path: Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (mode 0600 throughout)."""
    os.replace(_private_temp(path, text), path)
