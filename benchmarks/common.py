"""What every benchmark script shares: one JSON line per figure, and a scratch folder."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def emit(**figure: object) -> None:
    """One figure as one JSON line on stdout (what benchmarks/README.md quotes)."""
    print(json.dumps(figure), flush=True)


@contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A fresh temporary folder, removed afterwards unless ``keep`` (then its path goes to stderr)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        if keep:
            print(f"kept {folder}", file=sys.stderr)
        else:
            shutil.rmtree(folder, ignore_errors=True)
