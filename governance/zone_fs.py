"""The governed store's one filesystem, so the same zones live on a local folder or any fsspec URL (S3, ...).

The store names everything by *keys*, posix paths below its root (``raw/<call>/meta.json``), and
reads, lists, writes and deletes them here only; nothing else in the store touches a path.

- :class:`LocalZoneFS`: a folder (fsspec's ``LocalFileSystem``). Writes are atomic (temp file +
  rename), deletes move the item into ``.trash`` at once and then unlink it: the store as it always was.
- :class:`ObjectZoneFS`: any other fsspec URL. A PUT is atomic per object; a folder is published file by
  file with its marker file (a dataset version's manifest) last, so a half-published folder is never listed.
- :class:`S3ZoneFS`: S3 (s3fs). A delete removes every version of each object
  (:mod:`governance.object_versions`), so a versioned bucket keeps nothing an erasure removed.

Some tools can only work on files (DVC versions folders on disk; Label Studio serves audio from a folder).
A local store hands them its own folder. A remote store keeps local *copies* for them in its work area
(``work_dir``): copies of store data, so :meth:`ZoneFS.remove` deletes the copy with the object.
"""

from __future__ import annotations

import glob as globbing
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from governance import object_versions


class StoreLocationError(RuntimeError):
    """The store's location cannot be used (no such bucket, no credentials, no filesystem for the URL)."""


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int


def _by_parts(keys: Iterable[str]) -> list[str]:
    """Keys in the order of their parts, as sorted paths were (``a/b`` before ``a-c``)."""
    return sorted(keys, key=lambda key: key.split("/"))


def _built_beside(final: Path, build: Callable[[Path], None]) -> Path:
    """A folder ``build`` filled, in a fresh temporary folder beside ``final`` (this process's own)."""
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    build(tmp)
    return tmp


class ZoneFS:
    """Zones under ``root`` of the fsspec filesystem ``fs``, addressed by keys; reading is the same everywhere."""

    remote = False  # True: file tools get local copies in work_dir, which this class keeps in step

    def __init__(self, fs: Any, root: str, location: str, work_dir: Path) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.location = location  # what the store was opened on, for messages
        self.work_dir = work_dir

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    def _full(self, key: str) -> str:
        return f"{self.root}/{key}" if key else self.root

    def _key(self, full: str) -> str:
        return full[len(self.root) + 1:]

    # -- reading ------------------------------------------------------------------------
    def read(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._full(key)))
        except FileNotFoundError:
            raise FileNotFoundError(f"{key} is not in the store at {self.location}") from None

    def read_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """Key -> bytes of each key that exists (fetched concurrently where the filesystem can)."""
        wanted = list(keys)
        if not wanted:
            return {}
        found = self.fs.cat([self._full(key) for key in wanted], on_error="return")
        out = {}
        for full, data in found.items():
            if isinstance(data, FileNotFoundError):
                continue
            if isinstance(data, Exception):  # never read past a failure: a lookup would miss what it hid
                raise data
            out[self._key(full)] = bytes(data)
        return out

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._full(key)))

    def glob(self, pattern: str) -> list[str]:
        """Keys matching ``pattern`` (``*`` within one part), in path order."""
        return _by_parts(self._key(p) for p in self.fs.glob(f"{globbing.escape(self.root)}/{pattern}"))

    def files(self, key: str) -> list[StoredFile]:
        """The file ``key``, or every file below the folder ``key``, with sizes; empty when absent."""
        found = self.fs.find(self._full(key), detail=True)
        return [StoredFile(k, int(found[self._full(k)].get("size") or 0)) for k in _by_parts(map(self._key, found))]

    def modified(self, key: str) -> float:
        return float(self.fs.modified(self._full(key)).timestamp())

    # -- writing and deleting (per filesystem) -----------------------------------------------
    def prepare(self, folders: Iterable[str]) -> None:
        """Make ready to use (a local store creates its folders; a remote one checks it can be reached)."""
        raise NotImplementedError

    def write(self, key: str, data: bytes, *, keep_local: bool = False) -> None:
        """Store ``data`` at ``key`` whole or not at all; ``keep_local`` also keeps a local copy for file tools."""
        raise NotImplementedError

    def replace(self, key: str, data: bytes) -> None:
        """Rewrite ``key`` keeping no earlier version of it (what was rewritten away must not survive)."""
        self.write(key, data)

    def remove(self, key: str, first: tuple[str, ...] = ()) -> list[StoredFile]:
        """Delete the file or folder ``key`` for good (and its local copy); returns the files it held.

        Files named in ``first`` go first: what makes the rest part of the zone.
        """
        raise NotImplementedError

    def publish_folder(self, key: str, build: Callable[[Path], None], last: str) -> None:
        """Publish a folder that ``build`` writes into the local folder it is given; ``last`` (its marker
        file: what makes it listed) becomes visible after every other file."""
        raise NotImplementedError

    def drop_if_empty(self, key: str) -> None:
        """Remove the folder ``key`` (on this machine) once nothing is left in it: object stores have no folders."""
        path = self.local_path(key)
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()

    # -- local copies for file tools ---------------------------------------------------------
    def local_path(self, key: str) -> Path:
        """Where ``key`` is (a local store) or is copied (a remote one) on this machine."""
        return self.work_dir / key

    def fetch(self, key: str) -> Path:
        """A local file or folder holding ``key`` (a remote store downloads it into its work area once)."""
        return self.local_path(key)

    def upload(self, key: str, last: tuple[str, ...] = ()) -> None:
        """Put what file tools wrote at :meth:`local_path` of ``key`` into the store (a local store: already there)."""

    def prune_local(self, pattern: str, keep: set[str]) -> list[str]:
        """Delete local copies matching ``pattern`` whose key is not in ``keep`` (removed from the store on
        another machine); returns their keys. A local store has no copies."""
        return []


class LocalZoneFS(ZoneFS):
    """Zones in a local folder: atomic writes by rename, deletes through ``.trash``."""

    TRASH = ".trash"

    def __init__(self, root: Path) -> None:
        from fsspec.implementations.local import LocalFileSystem

        fs = LocalFileSystem()
        super().__init__(fs, str(fs._strip_protocol(str(root))), str(root), root)

    def prepare(self, folders: Iterable[str]) -> None:
        for folder in folders:
            self.local_path(folder).mkdir(parents=True, exist_ok=True)

    def modified(self, key: str) -> float:
        return self.local_path(key).stat().st_mtime

    def write(self, key: str, data: bytes, *, keep_local: bool = False) -> None:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def remove(self, key: str, first: tuple[str, ...] = ()) -> list[StoredFile]:
        """Move the item out of its zone at once (rename into ``.trash``), then unlink its files."""
        path = self.local_path(key)
        if not path.exists():
            return []
        files = self.files(key)
        trash = self.local_path(self.TRASH)
        trash.mkdir(exist_ok=True)
        os.replace(path, trash / uuid.uuid4().hex)
        self._empty_trash()
        return files

    def _empty_trash(self) -> None:
        """Unlink what earlier deletes moved aside (a killed delete leaves it here, not in a zone)."""
        for leftover in self.local_path(self.TRASH).iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()

    def publish_folder(self, key: str, build: Callable[[Path], None], last: str) -> None:
        final = self.local_path(key)
        os.replace(_built_beside(final, build), final)  # the whole folder appears at once


class ObjectZoneFS(ZoneFS):
    """Zones on an object store (any fsspec URL but a local path), with local copies in ``work_dir``."""

    remote = True

    def __init__(self, fs: Any, root: str, location: str, work_dir: Path) -> None:
        super().__init__(fs, root, location, work_dir)
        self._ready = False

    def prepare(self, folders: Iterable[str]) -> None:
        if self._ready:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        self._ready = True

    def _check_reachable(self) -> None:
        """Object stores have no folders to create; subclasses check the bucket is there."""

    def write(self, key: str, data: bytes, *, keep_local: bool = False) -> None:
        self.fs.pipe_file(self._full(key), data)  # one PUT: the object is there whole, or not at all
        if keep_local:
            _write_local(self.local_path(key), data)

    def remove(self, key: str, first: tuple[str, ...] = ()) -> list[StoredFile]:
        files = self.files(key)
        self._delete(key, files, first)
        self._remove_local(key)
        return files

    def _delete(self, key: str, files: list[StoredFile], first: tuple[str, ...]) -> None:
        ordered = sorted(files, key=lambda f: f.key.rsplit("/", 1)[-1] not in first)
        if ordered:
            self.fs.rm([self._full(f.key) for f in ordered])

    def _remove_local(self, key: str) -> None:
        path = self.local_path(key)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def publish_folder(self, key: str, build: Callable[[Path], None], last: str) -> None:
        local = self.local_path(key)
        tmp = _built_beside(local, build)
        shutil.rmtree(local, ignore_errors=True)  # a copy left by a publish killed before its upload ended
        _settle(tmp, local)
        self.upload(key, last=(last,))

    def fetch(self, key: str) -> Path:
        local = self.local_path(key)
        if local.exists():
            return local
        files = self.files(key)
        if not files:
            raise FileNotFoundError(f"{key} is not in the store at {self.location}")
        tmp = local.with_name(f".{local.name}.fetch-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        for stored in files:
            relative = stored.key[len(key):].lstrip("/")
            target = tmp / relative if relative else tmp
            target.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(self._full(stored.key), str(target))
        _settle(tmp, local)  # a copy is whole or absent, never half downloaded
        return local

    def upload(self, key: str, last: tuple[str, ...] = ()) -> None:
        local = self.local_path(key)
        paths = sorted(p for p in local.rglob("*") if p.is_file()) if local.is_dir() else [local]
        for path in sorted(paths, key=lambda p: p.name in last):
            relative = path.relative_to(self.work_dir).as_posix()
            self.fs.put_file(str(path), self._full(relative))

    def prune_local(self, pattern: str, keep: set[str]) -> list[str]:
        pruned = []
        for path in sorted(self.work_dir.glob(pattern)):
            key = path.relative_to(self.work_dir).as_posix()
            if any(part.startswith(".") for part in key.split("/")) or key in keep:
                continue
            self._remove_local(key)
            pruned.append(key)
        return pruned


class S3ZoneFS(ObjectZoneFS):
    """Zones in an S3 bucket (s3fs): deletes remove every object version, rewrites keep no earlier one."""

    versioned = True  # until the bucket says otherwise (_check_reachable): purging is the safe side

    def _bucket_key(self, key: str) -> tuple[str, str]:
        bucket, _, prefix = self._full(key).partition("/")
        return bucket, prefix

    def _check_reachable(self) -> None:
        bucket = self.root.split("/", 1)[0]
        try:
            found = self.fs.exists(bucket)
        except Exception as error:
            raise StoreLocationError(f"store.url {self.location}: cannot reach bucket {bucket!r} ({error}); check "
                                     "the AWS credentials and AWS_ENDPOINT_URL or store.storage_options") from error
        if not found:
            raise StoreLocationError(f"store.url {self.location}: bucket {bucket!r} does not exist (or these "
                                     "credentials cannot see it); create it first: the store never creates buckets")
        self.versioned = object_versions.bucket_is_versioned(self.fs, bucket)

    def _delete(self, key: str, files: list[StoredFile], first: tuple[str, ...]) -> None:
        """Every version and delete marker under ``key`` (also of objects deleted earlier), by version id."""
        bucket, prefix = self._bucket_key(key)
        object_versions.purge_versions(self.fs, bucket, prefix, first)
        self.fs.invalidate_cache(self._full(key))

    def replace(self, key: str, data: bytes) -> None:
        self.write(key, data)
        if self.versioned:
            bucket, prefix = self._bucket_key(key)
            object_versions.purge_older_versions(self.fs, bucket, prefix)


def _settle(tmp: Path, final: Path) -> None:
    """Rename a finished local copy into place; if another process on this machine got there first, keep theirs."""
    try:
        os.replace(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _write_local(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def open_zone_fs(location: Path | str, work_dir: Path | None = None,
                 storage_options: Mapping[str, Any] | None = None) -> ZoneFS:
    """The filesystem of a store at ``location``: a local folder (a path, or a ``file://`` URL), else any fsspec
    URL, which needs ``work_dir`` (the local work area) and takes fsspec ``storage_options`` (for S3, credentials
    and endpoint come from the usual AWS environment when not given: ``AWS_ENDPOINT_URL``, ``AWS_PROFILE`` ...)."""
    import fsspec

    if isinstance(location, Path):
        return LocalZoneFS(location)
    protocol, path = fsspec.core.split_protocol(location)
    if protocol in (None, "file", "local"):
        return LocalZoneFS(Path(path).expanduser().resolve())
    if work_dir is None:
        raise ValueError(f"a store at {location} needs a local work area (work_dir) for its file tools' copies")
    options = {"use_listings_cache": False, **(storage_options or {})}  # other writers change the store too
    try:
        fs, root = fsspec.core.url_to_fs(location, **options)
    except (ImportError, ValueError) as error:
        raise StoreLocationError(f"store.url {location}: {error}") from error
    if not root.strip("/"):
        raise StoreLocationError(f"store.url {location} names no bucket or folder")
    zone_fs = S3ZoneFS if protocol in ("s3", "s3a") else ObjectZoneFS
    return zone_fs(fs, root, location, work_dir)
