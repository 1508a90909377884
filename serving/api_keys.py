"""API keys of the serving runtime: from ``VOICELOOP_API_KEYS`` (comma-separated) or a key file.

The file (``serving.api_keys_file``, default ``<keys dir>/api-keys``: one key per line, ``#``
comments) is created with one random key on first start, private (0600) like every voiceloop key.
Keys are compared in constant time; neither they nor their absence are ever logged.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from governance.secret_files import create_secret, secure_dir

ENV = "VOICELOOP_API_KEYS"
HEADER = "X-API-Key"


def api_keys_path(keys_dir: Path, configured: str) -> Path:
    return Path(configured).expanduser() if configured else keys_dir / "api-keys"


def load_api_keys(path: Path) -> tuple[frozenset[str], str]:
    """The accepted keys and where they came from (the environment, or ``path``, created if missing)."""
    if os.environ.get(ENV):
        return frozenset(k.strip() for k in os.environ[ENV].split(",") if k.strip()), f"${ENV}"
    if not path.exists():
        secure_dir(path.parent)
        create_secret(path, f"# voiceloop serve API keys, one per line\n{secrets.token_urlsafe(32)}\n")
    keys = frozenset(line.strip() for line in path.read_text().splitlines()
                     if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise ValueError(f"{path} holds no API key: add one per line (or set {ENV})")
    return keys, str(path)


def key_accepted(given: str | None, keys: frozenset[str]) -> bool:
    """Whether ``given`` is one of ``keys``, in time that does not depend on where they differ."""
    if not given:
        return False
    matches = [hmac.compare_digest(given.encode(), key.encode()) for key in keys]
    return any(matches)
