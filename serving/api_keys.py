"""API keys of the serving runtime, each with a name and a role: from ``VOICELOOP_API_KEYS`` or a key file.

One key per line of the file (``serving.api_keys_file``, default ``<keys dir>/api-keys``; ``#``
comments), or per comma-separated item of the variable: ``NAME ROLE KEY`` (``bot-platform voice-bot
k3y...``), or the key alone, which is named after a digest of it and takes the server's role (keys
made before names and roles existed). The name is what the audit trail records of a client; the
role, a role of the access policy, decides what the key's responses may hold (raw transcripts only
for a role with the ``transcription`` purpose). The file is created with one random key named
``default`` on first start, private (0600) like every voiceloop key. Keys are compared in constant
time; neither they nor their absence are ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from governance.secret_files import create_secret, secure_dir

ENV = "VOICELOOP_API_KEYS"
HEADER = "X-API-Key"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ApiKey:
    name: str  # who the client is, in the audit trail
    role: str  # a role of the access policy ("" until the server resolves a bare key to its own role)
    secret: str = ""

    def __repr__(self) -> str:  # never the secret, not even in a traceback
        return f"ApiKey(name={self.name!r}, role={self.role!r})"


def api_keys_path(keys_dir: Path, configured: str) -> Path:
    return Path(configured).expanduser() if configured else keys_dir / "api-keys"


def parse_key(entry: str, where: str) -> ApiKey:
    """One ``NAME ROLE KEY`` or bare ``KEY`` entry; ValueError naming ``where`` (never the key)."""
    parts = entry.split()
    if len(parts) == 1:
        return ApiKey("key-" + hashlib.sha256(parts[0].encode()).hexdigest()[:8], "", parts[0])
    if len(parts) != 3:
        raise ValueError(f"{where}: expected NAME ROLE KEY (or the key alone), found {len(parts)} fields")
    name, role, secret = parts
    if not _NAME.match(name):
        raise ValueError(f"{where}: key name {name!r} must be letters, digits, '_', '-', '.' (64 at most)")
    return ApiKey(name, role, secret)


def load_api_keys(path: Path) -> tuple[tuple[ApiKey, ...], str]:
    """The accepted keys and where they came from (the environment, or ``path``, created if missing)."""
    if os.environ.get(ENV, "").strip():  # set to nothing: as if unset
        items = [item.strip() for item in os.environ[ENV].split(",")]
        keys = tuple(parse_key(item, f"${ENV} item {n}") for n, item in enumerate(items, 1) if item)
        if not keys:
            raise ValueError(f"${ENV} is set but holds no API key: give NAME ROLE KEY items separated by "
                             f"commas, or unset it to use the key file {path}")
        return _unique(keys, f"${ENV}"), f"${ENV}"
    if not path.exists():
        secure_dir(path.parent)
        create_secret(path, "# voiceloop serve API keys, one per line: NAME ROLE KEY\n"
                            f"default serving {secrets.token_urlsafe(32)}\n")
    keys = tuple(parse_key(line, f"{path}:{n}") for n, line in enumerate(path.read_text().splitlines(), 1)
                 if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise ValueError(f"{path} holds no API key: add one per line, NAME ROLE KEY (or set {ENV})")
    return _unique(keys, str(path)), str(path)


def _unique(keys: tuple[ApiKey, ...], source: str) -> tuple[ApiKey, ...]:
    names = [k.name for k in keys]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{source}: key names must be unique; used twice: {', '.join(twice)}")
    return keys


def matching_key(given: str | None, keys: tuple[ApiKey, ...]) -> ApiKey | None:
    """The key ``given`` is, compared with every key in time that does not depend on where they differ."""
    if not given:
        return None
    found = None
    for key in keys:
        if hmac.compare_digest(given.encode("utf-8", "surrogatepass"), key.secret.encode()):
            found = key
    return found
