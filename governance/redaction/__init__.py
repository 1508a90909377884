"""PII redaction of call transcripts (Presidio plus spoken-form recognizers) and a leak check.

Importing this package sets tldextract's offline defaults: Presidio's e-mail recognizer would
otherwise try to download the public-suffix list when it is imported. Values already in the
environment (``core.runtime.prepare`` sets them per project) win. The public names are
loaded lazily so that ``find_leaks`` does not pull in Presidio and spaCy.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["Entity", "Redaction", "Redactor", "find_leaks"]


def _offline_defaults() -> None:
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    if "TLDEXTRACT_CACHE" not in os.environ:
        cache = Path(tempfile.gettempdir()) / "voiceloop-tldextract"
        cache.mkdir(parents=True, exist_ok=True)
        os.environ["TLDEXTRACT_CACHE"] = str(cache)


_offline_defaults()


def __getattr__(name: str) -> Any:
    if name == "find_leaks":
        from governance.redaction.leaks import find_leaks

        return find_leaks
    if name in {"Entity", "Redaction", "Redactor"}:
        from governance.redaction import redactor

        return getattr(redactor, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
