"""Secrets of the store: the raw zone's Fernet keys and the caller-pseudonym key.

Raw keys come from ``VOICELOOP_RAW_KEYS`` (comma-separated Fernet keys) or, when it is unset,
from ``<keys_dir>/raw.keys`` (one key per line), which is created with one fresh key on first
use (folder 0700, file 0600). The first key encrypts and every key decrypts (``MultiFernet``):
that is what makes rotation safe: prepend a new key, re-encrypt, then drop the old one.
Errors name where the keys came from and a key's fingerprint, never a key.
"""

from __future__ import annotations

import binascii
import hashlib
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from governance.secret_files import create_secret, replace_secret, secure_dir

RAW_KEYS_ENV = "VOICELOOP_RAW_KEYS"
RAW_KEYS_FILE = "raw.keys"
PSEUDONYM_KEY_FILE = "pseudonym.key"


class RawKeyError(RuntimeError):
    """Raw keys are missing, malformed or cannot decrypt a file; says where and what to do."""


def generate_key() -> str:
    return Fernet.generate_key().decode()


def fingerprint(key: str) -> str:
    """A short, non-secret name for a key (for audit entries and messages)."""
    return hashlib.sha256(key.strip().encode()).hexdigest()[:12]


def pseudonym(value: str, key: str) -> str:
    """Keyed hash of a caller id; the same function everywhere, so raw, redacted and quarantine match."""
    return "caller-" + hashlib.sha256((key + value).encode()).hexdigest()[:16]


# -- files holding secrets ---------------------------------------------------------------------
def _write_secret(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` with mode 0600 from the start, in the private keys folder; without
    ``replace``, only if the file does not exist yet (a concurrent creator's value wins)."""
    secure_dir(path.parent)
    if replace:
        replace_secret(path, text)
    else:
        create_secret(path, text)


def _check_private(path: Path) -> None:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise RawKeyError(f"{path} is readable by other users (mode {path.stat().st_mode & 0o777:o}); chmod 600 it")


def _read_key_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def load_pseudonym_key(keys_dir: Path) -> str:
    """The per-installation pseudonym key, created on first use (a guessed caller id cannot be hashed)."""
    path = keys_dir / PSEUDONYM_KEY_FILE
    _write_secret(path, secrets.token_hex(32), replace=False)
    return path.read_text().strip()


# -- raw-zone encryption --------------------------------------------------------------------------
_GENERATE_HINT = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


class RawCipher:
    """MultiFernet over the configured keys: the first encrypts, all decrypt."""

    def __init__(self, keys: Sequence[str], source: str) -> None:
        if not keys:
            raise RawKeyError(f"{source} holds no raw key; add one (generate it with `{_GENERATE_HINT}`)")
        fernets = []
        for index, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key.strip().encode()))
            except (ValueError, binascii.Error):
                raise RawKeyError(
                    f"{source}: key {index} of {len(keys)} is not a valid Fernet key (32 url-safe base64 bytes); "
                    f"generate one with `{_GENERATE_HINT}`"
                ) from None
        self.source = source
        self.fingerprints = [fingerprint(k) for k in keys]
        self._fernet = MultiFernet(fernets)

    @property
    def primary(self) -> str:
        return self.fingerprints[0]

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, token: bytes, what: str) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise self._undecryptable(what) from None

    def rotate(self, token: bytes, what: str) -> bytes:
        """Re-encrypt ``token`` with the primary key (the content is never returned)."""
        try:
            return self._fernet.rotate(token)
        except InvalidToken:
            raise self._undecryptable(what) from None

    def _undecryptable(self, what: str) -> RawKeyError:
        return RawKeyError(
            f"{what} cannot be decrypted with the {len(self.fingerprints)} raw key(s) from {self.source} "
            f"(fingerprints {', '.join(self.fingerprints)}): the key that encrypted it is missing or the file is "
            "damaged. Put the old key back after the new one and run key rotation before dropping it"
        )


def load_raw_cipher(keys_dir: Path, environ: Mapping[str, str] | None = None) -> RawCipher:
    """Keys from ``VOICELOOP_RAW_KEYS`` or ``<keys_dir>/raw.keys`` (created with a fresh key if missing)."""
    env = os.environ if environ is None else environ
    if env.get(RAW_KEYS_ENV, "").strip():
        keys = [k.strip() for k in env[RAW_KEYS_ENV].split(",") if k.strip()]
        return RawCipher(keys, RAW_KEYS_ENV)
    path = keys_dir / RAW_KEYS_FILE
    _write_secret(path, generate_key() + "\n", replace=False)
    _check_private(path)
    return RawCipher(_read_key_lines(path), str(path))


def add_raw_key(keys_dir: Path, environ: Mapping[str, str] | None = None) -> str:
    """Step 1 of rotation: prepend a fresh key to ``raw.keys``; return its fingerprint."""
    env = os.environ if environ is None else environ
    if env.get(RAW_KEYS_ENV, "").strip():
        raise RawKeyError(f"raw keys come from {RAW_KEYS_ENV}: prepend the new key there (comma-separated)")
    path = keys_dir / RAW_KEYS_FILE
    old = _read_key_lines(path) if path.exists() else []
    key = generate_key()
    _write_secret(path, "\n".join([key, *old]) + "\n", replace=True)
    return fingerprint(key)


def retire_raw_keys(keys_dir: Path, environ: Mapping[str, str] | None = None) -> list[str]:
    """Last step of rotation: keep only the primary key in ``raw.keys``; return the dropped fingerprints.

    Only after key rotation reported no failures: files still under a dropped key become unreadable.
    """
    env = os.environ if environ is None else environ
    if env.get(RAW_KEYS_ENV, "").strip():
        raise RawKeyError(f"raw keys come from {RAW_KEYS_ENV}: remove the old keys there")
    path = keys_dir / RAW_KEYS_FILE
    keys = _read_key_lines(path)
    if not keys:
        raise RawKeyError(f"{path} holds no raw key")
    _write_secret(path, keys[0] + "\n", replace=True)
    return [fingerprint(k) for k in keys[1:]]


class Keyring:
    """The store's secrets, loaded on first use (a store that never touches raw never needs raw keys)."""

    def __init__(self, keys_dir: Path, environ: Mapping[str, str] | None = None) -> None:
        self.keys_dir = keys_dir
        self._environ = environ
        self._raw: RawCipher | None = None
        self._pseudonym_key: str | None = None

    @property
    def raw(self) -> RawCipher:
        if self._raw is None:
            self._raw = load_raw_cipher(self.keys_dir, self._environ)
        return self._raw

    @property
    def pseudonym_key(self) -> str:
        if self._pseudonym_key is None:
            self._pseudonym_key = load_pseudonym_key(self.keys_dir)
        return self._pseudonym_key

    def reload(self) -> None:
        """Forget loaded keys (after the key file or environment changed)."""
        self._raw = None
