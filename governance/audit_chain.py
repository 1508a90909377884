"""The keyed chain format of the audit log: keys, canonical payloads, MACs, the head anchor, the lock.

Nothing here touches the database, so the format can be read (and re-implemented by an
auditor) on its own:

* every keyed entry carries ``mac = HMAC-SHA256(chain_key, prev_link + payload)`` where
  ``payload`` is :func:`entry_payload` of its columns and ``prev_link`` is the previous entry's
  MAC (or, for the first keyed entry after foundation-era rows, their last plain hash; or
  :data:`GENESIS`). Without the key nobody can recompute a MAC, so edits, insertions and
  reorderings show up even when the plain SHA-256 columns were recomputed;
* a *head* file kept outside the database holds the last id and MAC, HMAC'd with the same key,
  so cutting the tail off the table (which leaves a valid shorter chain) shows up too; a *head
  mirror* (any path or fsspec URL, :class:`HeadCopy`) keeps a second copy where whoever holds the
  project folder cannot write;
* one secret per installation; the chain, head, signature and pseudonym keys are derived from
  it with distinct labels, so no MAC made for one purpose is ever valid for another.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from governance.secret_files import create_secret, secure_dir

GENESIS = "0" * 64
KEY_ENV = "VOICELOOP_AUDIT_KEY"
KEY_FILE = "audit.key"
ROTATION_ACTION = "audit.key-rotated"
SEAL_ACTION = "audit.sealed"
REANCHOR_ACTION = "audit.head-reanchored"
HEAD_FILE, HEAD_MIRROR = "head file", "head mirror"  # the kinds of :class:`HeadCopy`
MIN_KEY_BYTES = 16

# The columns a keyed MAC covers, in payload order (the verifier SELECTs them in this order).
PAYLOAD_COLUMNS = ("id", "ts", "actor", "role", "purpose", "action", "zone", "call_ids", "flow_run_id",
                   "outcome", "detail", "note", "caller", "key_id")
# ... followed by the link columns; verify rows are PAYLOAD_COLUMNS + LINK_COLUMNS.
LINK_COLUMNS = ("prev_hash", "entry_hash", "mac")

# Built once: json.dumps with non-default options builds a new encoder on every call.
canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
"""The one JSON form of ``call_ids``/``detail``: the engine stores it and the MAC covers it verbatim."""
_encode_payload = json.JSONEncoder(separators=(",", ":")).encode


class AuditKeyError(RuntimeError):
    """The audit key is missing, malformed, or not the key this log is chained with."""


# -- keys ---------------------------------------------------------------------------------------
def parse_key(text: str, source: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise AuditKeyError(f"{source} is not a hex string") from None
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(f"{source} is {len(key)} bytes; an audit key needs at least {MIN_KEY_BYTES}")
    return key


def key_id(key: bytes) -> str:
    """A public name for a key (recorded in each entry), from which the key cannot be recovered."""
    return hashlib.sha256(b"voiceloop-audit-key-id:" + key).hexdigest()[:16]


def load_key_file(path: Path, *, private_dir: bool = False) -> bytes:
    """Read a hex key file, creating it (random, mode 0600) on first use.

    The new key is written to a private temp file and hard-linked into place, so concurrent
    first uses agree on one key and nobody ever reads a half-written one. ``private_dir`` also
    makes the folder 0700 (the keys folder; not the folder of a library-default ``<db>.key``).
    """
    if private_dir:
        secure_dir(path.parent, strict=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    create_secret(path, secrets.token_hex(32) + "\n")
    return parse_key(path.read_text(), str(path))


def key_from_environment() -> str:
    """``VOICELOOP_AUDIT_KEY`` as set ('' when unset or blank): when set, it wins over every key file."""
    return os.environ.get(KEY_ENV, "").strip()


def audit_key(keys_dir: Path) -> bytes:
    """The current audit key: ``VOICELOOP_AUDIT_KEY`` (hex; first of a comma list) or ``keys_dir/audit.key``."""
    return audit_keyring(keys_dir)[0]


def audit_keyring(keys_dir: Path) -> list[bytes]:
    """Current key first, then retired ones (still needed to verify older segments of the chain).

    From the environment: ``VOICELOOP_AUDIT_KEY=new,old,...``. From files: ``audit.key`` plus
    the retired ``audit.<key id>.key`` files that :func:`rotate_key_files` leaves behind.
    """
    env = key_from_environment()
    if env:
        return [parse_key(part, f"{KEY_ENV}[{i}]") for i, part in enumerate(env.split(",")) if part.strip()]
    current = load_key_file(keys_dir / KEY_FILE, private_dir=True)
    retired = [parse_key(p.read_text(), str(p)) for p in sorted(keys_dir.glob("audit.*.key"))]
    return [current, *(k for k in retired if k != current)]


def rotate_key_files(keys_dir: Path) -> tuple[str, str]:
    """Retire ``audit.key`` as ``audit.<id>.key`` and create a new one; returns (old id, new id).

    The log records the rotation itself (an ``audit.key-rotated`` entry MACed with the old key)
    at its next write. Keys from ``VOICELOOP_AUDIT_KEY`` are rotated by editing that variable.
    """
    if key_from_environment():
        raise AuditKeyError(f"{KEY_ENV} is set: rotate by setting it to 'NEW_HEX,OLD_HEX'")
    old = load_key_file(keys_dir / KEY_FILE, private_dir=True)
    retired = keys_dir / f"audit.{key_id(old)}.key"
    os.replace(keys_dir / KEY_FILE, retired)
    return key_id(old), key_id(load_key_file(keys_dir / KEY_FILE, private_dir=True))


def _derive(key: bytes, purpose: bytes) -> bytes:
    return hmac.digest(key, b"voiceloop-audit/" + purpose, "sha256")


@dataclass(frozen=True)
class ChainKey:
    """One audit secret and the purpose-bound keys derived from it."""

    id: str
    chain: bytes
    head: bytes
    sign: bytes
    pseudonym: bytes

    @classmethod
    def of(cls, key: bytes) -> ChainKey:
        if len(key) < MIN_KEY_BYTES:
            raise AuditKeyError(f"an audit key needs at least {MIN_KEY_BYTES} bytes")
        return cls(key_id(key), _derive(key, b"chain"), _derive(key, b"head"), _derive(key, b"sign"),
                   _derive(key, b"pseudonym"))

    def __repr__(self) -> str:  # never print key material
        return f"ChainKey(id={self.id!r})"


# -- entries ------------------------------------------------------------------------------------
def ts_text(ts: datetime) -> str:
    """The timestamp as the MAC covers it: UTC, microseconds, SQLAlchemy's SQLite storage format."""
    if ts.tzinfo is not None:
        ts = ts.astimezone(UTC).replace(tzinfo=None)
    return ts.isoformat(" ", "microseconds")


def entry_payload(values: Sequence[Any]) -> bytes:
    """Canonical bytes of the :data:`PAYLOAD_COLUMNS` values (JSON columns as their stored text)."""
    return _encode_payload(values).encode()


def entry_mac(key: ChainKey, prev_link: str, payload: bytes) -> str:
    return hmac.digest(key.chain, prev_link.encode() + payload, "sha256").hex()


def plain_hash(prev_hash: str, payload: bytes) -> str:
    """The unkeyed SHA-256 chain kept beside the MAC (detects accidents; an attacker can recompute it)."""
    return hashlib.sha256(prev_hash.encode() + payload).hexdigest()


def legacy_hash(prev_hash: str, row: Sequence[Any]) -> str:
    """The foundation's unkeyed hash of a pre-MAC row (same field order as verify rows)."""
    content = {
        "id": row[0], "ts": row[1].replace(" ", "T") + "+00:00", "actor": row[2], "role": row[3],
        "purpose": row[4], "action": row[5], "zone": row[6], "call_ids": list(json.loads(row[7])),
        "flow_run_id": row[8], "outcome": row[9], "detail": json.loads(row[10]), "note": row[11],
    }
    payload = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def rotation_target(detail_json: str) -> str:
    """The key id a (MAC-verified) rotation entry hands the chain over to."""
    return str(json.loads(detail_json).get("new_key_id") or "(no key named)")


@dataclass
class ChainTip:
    """Where the chain ends: what the next entry links to, and which key is in force."""

    last_id: int = 0
    prev_hash: str = GENESIS  # plain chain
    prev_link: str = GENESIS  # MAC chain (the last MAC, or the last legacy hash)
    key_id: str | None = None  # None: no keyed entry yet
    last_mac: str | None = None


@dataclass
class WalkResult:
    checked: int
    tip: ChainTip
    bad_id: int | None = None
    reason: str = ""
    watched: dict[int, str] = field(default_factory=dict)  # id -> MAC of the entries the head copies name


def walk_chain(rows: Iterable[Sequence[Any]], keys: dict[str, ChainKey], watch: Collection[int] = ()) -> WalkResult:
    """Check rows (``PAYLOAD_COLUMNS + LINK_COLUMNS``, in id order) and stop at the first bad one;
    ``watch``: ids whose MAC to hand back (the entries the head copies name).

    The loop is the hot path of ``verify`` (a million rows in seconds): locals only, one JSON
    encode, one HMAC and one SHA-256 per row; the rare branches (legacy rows, key rotation)
    are off the main line.
    """
    tip = ChainTip()
    expected, checked, keyed = 1, 0, False
    watching = frozenset(watch)
    watched: dict[int, str] = {}
    prev_plain, prev_link = GENESIS, GENESIS
    kid: str | None = None  # the key in force (None until the first keyed entry chooses one)
    key: ChainKey | None = None
    digest, sha256 = hmac.digest, hashlib.sha256

    def fail(bad_id: int, reason: str, named: bool = True) -> WalkResult:
        tip.last_id, tip.prev_hash, tip.prev_link, tip.key_id = expected - 1, prev_plain, prev_link, kid
        return WalkResult(checked, tip, bad_id, f"entry {bad_id}: {reason}" if named else reason, watched)

    for row in rows:
        rid = row[0]
        if rid != expected:
            if rid > expected:
                gap = (f"entry {expected} is missing" if rid == expected + 1
                       else f"entries {expected}-{rid - 1} are missing")
                return fail(rid, f"{gap}: the log jumps from entry {expected - 1} to {rid} (deleted?)", named=False)
            return fail(rid, f"appears again after entry {expected - 1} (duplicated id?)")
        prev_hash, entry_hash, mac = row[14], row[15], row[16]
        if prev_hash != prev_plain:
            return fail(rid, f"does not link to entry {rid - 1} (rows reordered or inserted, or its link edited)")
        if mac is None:
            if keyed:
                return fail(rid, "has no MAC although keyed entries precede it (inserted without the key?)")
            try:
                intact = legacy_hash(prev_plain, row) == entry_hash
            except (ValueError, TypeError, AttributeError):  # JSON columns that no longer parse
                intact = False
            if not intact:
                return fail(rid, "content does not match its hash (edited?)")
            prev_plain = prev_link = entry_hash
        else:
            if row[13] != kid:
                if keyed:
                    return fail(rid, f"claims key {row[13]} but the chain is keyed with {kid} here (forged?)")
                kid = row[13]  # the first keyed entry chooses the key; later ones change it only by rotation
            if key is None or key.id != kid:
                key = keys.get(kid) if kid else None
                if key is None:
                    return fail(rid, f"is MACed with key {kid}, which this verifier does not hold "
                                     "(wrong VOICELOOP_AUDIT_KEY / keys folder, or a retired key is missing)")
            payload = _encode_payload(row[:14]).encode()
            # a plain comparison: both sides are stored values, and compare_digest would raise on non-ASCII
            if digest(key.chain, prev_link.encode() + payload, "sha256").hex() != mac:
                return fail(rid, "content does not match its MAC (edited, or inserted/moved here without the key?)")
            if sha256(prev_hash.encode() + payload).hexdigest() != entry_hash:
                return fail(rid, "its hash column does not match its content (edited?)")
            keyed, prev_plain, prev_link = True, entry_hash, mac
            if row[5] == ROTATION_ACTION:
                kid = rotation_target(row[10])
        if rid in watching:
            watched[rid] = prev_link
        expected, checked = expected + 1, checked + 1
    tip.last_id, tip.prev_hash, tip.prev_link, tip.key_id = expected - 1, prev_plain, prev_link, kid
    tip.last_mac = prev_link if keyed else None
    return WalkResult(checked, tip, watched=watched)


# -- the head anchor ----------------------------------------------------------------------------
class HeadError(ValueError):
    """The head file exists but cannot be read as a head (corrupted or forged)."""


@dataclass(frozen=True)
class Head:
    """The chain's last entry as recorded outside the database, HMAC'd so it cannot be forged."""

    last_id: int
    last_mac: str
    count: int
    key_id: str
    mac: str

    @staticmethod
    def _body(last_id: int, last_mac: str, count: int, kid: str) -> bytes:
        return canonical_json({"version": 1, "last_id": last_id, "last_mac": last_mac, "count": count,
                               "key_id": kid}).encode()

    @classmethod
    def seal(cls, key: ChainKey, last_id: int, last_mac: str, count: int) -> Head:
        body = cls._body(last_id, last_mac, count, key.id)
        return cls(last_id, last_mac, count, key.id, hmac.digest(key.head, body, "sha256").hex())

    def authentic(self, keys: dict[str, ChainKey]) -> bool:
        key = keys.get(self.key_id)
        if key is None:
            return False
        body = self._body(self.last_id, self.last_mac, self.count, self.key_id)
        return hmac.compare_digest(hmac.digest(key.head, body, "sha256").hex().encode(), self.mac.encode())

    def to_json(self) -> str:
        return json.dumps({"version": 1, "last_id": self.last_id, "last_mac": self.last_mac, "count": self.count,
                           "key_id": self.key_id, "mac": self.mac}, indent=1) + "\n"


def parse_head(text: str, source: str) -> Head:
    """A head from its JSON text; :class:`HeadError` naming ``source`` when it is not one."""
    try:
        data = json.loads(text)
        return Head(int(data["last_id"]), str(data["last_mac"]), int(data["count"]), str(data["key_id"]),
                    str(data["mac"]))
    except (ValueError, KeyError, TypeError) as error:
        raise HeadError(f"{source} is unreadable ({error.__class__.__name__})") from None


def read_head(path: Path, source: str = HEAD_FILE) -> Head | None:
    """The head, or None when there is no head file yet; :class:`HeadError` when it is unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return parse_head(text, f"{source} {path}")


def write_head(path: Path, head: Head) -> None:
    """Atomic and durable: write a temp file beside it, fsync, rename over the old head."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(head.to_json())
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class HeadAccessError(RuntimeError):
    """A copy of the head cannot be read or written (the message names the copy, the cause and the fix)."""


def local_path(location: str) -> Path | None:
    """The file a head location names on this machine (a plain path or a ``file://`` URL); None for a
    remote fsspec URL (``s3://...``)."""
    if "://" not in location:
        return Path(location).expanduser()
    if location.startswith("file://"):
        import fsspec

        return Path(fsspec.core.url_to_fs(location)[1])
    return None


@dataclass(frozen=True)
class HeadCopy:
    """One place the chain head is kept: the head file, or its mirror (a path or any fsspec URL).

    A local copy is written like the head file (temp file, fsync, rename); a remote one in one
    ``pipe_file`` call, which object stores make atomic.
    """

    kind: str  # HEAD_FILE or HEAD_MIRROR
    location: str
    path: Path | None = None  # set for a copy on this machine
    fs: Any = field(default=None, compare=False, repr=False)  # the fsspec filesystem of a remote copy
    fs_path: str = ""

    @classmethod
    def at(cls, kind: str, location: str) -> HeadCopy:
        """The copy at ``location``; :class:`HeadAccessError` when its scheme has no fsspec backend here."""
        path = local_path(location)
        if path is not None:
            return cls(kind, location, path)
        import fsspec

        try:
            fs, fs_path = fsspec.core.url_to_fs(location)
        except (ImportError, ValueError) as error:
            raise HeadAccessError(f"the {kind} {location} cannot be opened: {error} (install the fsspec backend of "
                                  "its scheme, e.g. s3fs, or fix audit.head_mirror)") from None
        return cls(kind, location, None, fs, fs_path)

    @property
    def label(self) -> str:
        """How messages name it: the head file by its role (its path is in the settings), a mirror by its URL."""
        return f"the {HEAD_FILE}" if self.kind == HEAD_FILE else f"the {self.kind} {self.location}"

    @property
    def named(self) -> str:
        return f"the {self.kind} {self.location}"

    def read(self) -> Head | None:
        """The head it holds, None when there is none yet; :class:`HeadError` when it holds no valid head
        and :class:`HeadAccessError` when it cannot be read at all."""
        try:
            if self.path is not None:
                return read_head(self.path, self.kind)
            try:
                data = self.fs.cat_file(self.fs_path)
            except FileNotFoundError:
                return None
            return parse_head(data.decode("utf-8", "replace"), self.named)
        except OSError as error:
            raise HeadAccessError(f"{self.named} cannot be read ({error.__class__.__name__}: {error})") from None

    def write(self, head: Head) -> None:
        """Replace the head it holds; :class:`HeadAccessError` naming the copy and the cause on failure."""
        try:
            if self.path is not None:
                write_head(self.path, head)
            else:
                self.fs.pipe_file(self.fs_path, head.to_json().encode())
        except OSError as error:
            raise HeadAccessError(f"{self.named} could not be written ({error.__class__.__name__}: {error})") from None


# -- the writer lock ----------------------------------------------------------------------------
class FileLock:
    """A process-level ``flock`` beside the head file: appends hold it exclusively, so the order of
    rows in the database and the head file agree across processes; ``verify`` holds it shared just
    long enough to read the head and the database tip together. Not re-entrant: never nest."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _hold(self, mode: int) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+")  # noqa: SIM115 - closed below, after the unlock
        except PermissionError:
            if mode == fcntl.LOCK_EX or not self.path.exists():
                raise
            handle = open(self.path)  # noqa: SIM115 - a read-only auditor can still take a shared lock
        try:
            fcntl.flock(handle.fileno(), mode)
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        return self._hold(fcntl.LOCK_EX)

    def shared(self) -> contextlib.AbstractContextManager[None]:
        return self._hold(fcntl.LOCK_SH)
