"""Version dataset folders with DVC: a cache and a remote, both configurable.

The datasets zone is its own DVC repository (``--no-scm``), so versioning works wherever
state lives (including test temp dirs), never touches the source checkout, and stays clear
of the outputs of the checkout's own ``dvc.yaml`` stages. Each dataset
version gets a ``.dvc`` file beside it and is pushed to the remote, so a fresh machine can
``dvc pull`` exactly what a model was trained on.

Erasure needs the reverse: when a version is dropped, the objects only it used must leave the
cache and the remote too, or the erased rows stay one ``dvc pull`` away. DVC 3 stores a folder as
a ``<md5>.dir`` object (a JSON list of the files' md5s) plus one object per file, at
``files/md5/<first 2 hex>/<rest>`` in both the cache and the remote. :meth:`DvcVersioner.forget`
removes the objects of a dropped version that no remaining ``.dvc`` file still needs, through
DVC's own object databases, so any remote DVC can push to (local folder, S3, ...) works alike.

DVC 3 tracks no cloud outputs, so a store on object storage (``store.url``) is versioned through
its local staging copy (:meth:`GovernedStore.dvc_workspace`): a version is copied there before DVC
adds it (:meth:`GovernedStore.stage_for_dvc`) and its ``.dvc`` pointer is kept in the zone
(:meth:`GovernedStore.keep_dvc_pointer`), where erasure reads it from any machine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from governance.object_versions import purge_versions

if TYPE_CHECKING:
    from core.settings import Settings
    from governance.store import GovernedStore

REMOTE = "store"


@dataclass
class ObjectRemoval:
    """Objects deleted from one object store (the cache or the remote)."""

    location: str
    objects: list[str] = field(default_factory=list)
    bytes: int = 0
    absent: list[str] = field(default_factory=list)  # not there to delete (never pushed, or gone already)


@dataclass
class DvcRemoval:
    """What dropping dataset versions removed from DVC's storage."""

    versions: list[str]  # the .dir md5s of the dropped versions
    objects: list[str]  # every object those versions used
    shared: list[str]  # still used by a remaining version: kept
    cache: ObjectRemoval
    remote: ObjectRemoval


def out_md5(dvc_file: Path) -> str:
    """The content hash a ``.dvc`` file points at (``<md5>.dir`` for a folder)."""
    outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
    return str(outs[0].get("md5") or "")


class DvcVersioner:
    """DVC over one datasets folder; with ``store``, the store's (its folders staged, its pointers kept in the zone)."""

    def __init__(self, root: Path, remote_url: str, cache_dir: Path, store: GovernedStore | None = None) -> None:
        from dvc.repo import Repo

        # DVC draws progress bars unless its loggers are above ERROR: voiceloop reports progress itself,
        # and DVC raises what goes wrong.
        for name in ("dvc", "dvc_data", "dvc_objects"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self.root = root
        if not (root / ".dvc").exists():
            Repo.init(str(root), no_scm=True)
        repo = Repo(str(root))
        with repo.config.edit() as config:
            config["cache"]["dir"] = str(cache_dir)
            config["core"]["remote"] = REMOTE
            config["remote"][REMOTE] = {"url": remote_url}
        self.repo = Repo(str(root))
        self.remote_url = remote_url
        self.store = store

    @classmethod
    def of(cls, store: GovernedStore, settings: Settings) -> DvcVersioner:
        """The versioner of ``store``'s datasets zone, reached through :meth:`GovernedStore.dvc_workspace`
        (the one place the store hands out a folder), with the configured cache and remote."""
        return cls(store.dvc_workspace("write"), settings.dvc_remote_url, settings.root / "dvc-cache", store)

    def track(self, name: str, digest: str) -> str:
        """Add (idempotently) and push version ``name@digest``; return DVC's content hash for it."""
        folder = self.store.stage_for_dvc(name, digest) if self.store else self.root / name / digest
        dvc_file = folder.with_name(folder.name + ".dvc")
        if not dvc_file.exists():
            self.repo.add(str(folder))
        self.repo.push(targets=[str(dvc_file)])
        if self.store:
            self.store.keep_dvc_pointer(name, digest)
        return out_md5(dvc_file)

    # -- object bookkeeping ------------------------------------------------------------------
    @property
    def _cache(self) -> Any:
        return self.repo.cache.local

    @cached_property
    def _remote(self) -> Any:
        return self.repo.cloud.get_remote_odb(REMOTE)

    def dvc_files(self) -> list[Path]:
        """Every ``.dvc`` pointer of the datasets repository (one per tracked version)."""
        return sorted(p for p in self.root.glob("*/*.dvc") if p.is_file())

    def objects_of(self, md5: str) -> set[str]:
        """The objects one tracked output uses: its ``.dir`` object and every file it lists.

        The listing is read from the cache, else from the remote; an output whose listing is in
        neither is reported as its ``.dir`` object alone (its files cannot be named any more).
        """
        if not md5.endswith(".dir"):
            return {md5}
        listing = self._read_object(md5)
        if listing is None:
            return {md5}
        return {md5} | {str(entry["md5"]) for entry in json.loads(listing) if entry.get("md5")}

    def _object_stores(self) -> Iterator[Any]:
        """The cache, then the remote (opened only when the cache lacks what is looked for)."""
        yield self._cache
        yield self._remote

    def _read_object(self, oid: str) -> bytes | None:
        for odb in self._object_stores():
            path = odb.oid_to_path(oid)
            if odb.fs.exists(path):
                return bytes(odb.fs.cat_file(path))
        return None

    def referenced_objects(self) -> set[str]:
        """Objects some remaining ``.dvc`` file still needs (never deleted)."""
        used: set[str] = set()
        for dvc_file in self.dvc_files():
            md5 = out_md5(dvc_file)
            if md5:
                used |= self.objects_of(md5)
        return used

    def forget(self, md5s: Iterable[str]) -> DvcRemoval:
        """Delete, from the cache and the remote, the objects of dropped versions that nothing else uses.

        Call it after the versions' ``.dvc`` files are gone (``GovernedStore.delete_dataset``) and
        after their replacements are tracked, so shared objects are seen as shared.
        """
        versions = sorted({m for m in md5s if m})
        objects: set[str] = set()
        for md5 in versions:
            objects |= self.objects_of(md5)
        shared = objects & self.referenced_objects()
        # file objects first, listings last: a killed run can still name what is left to delete
        doomed = sorted(objects - shared, key=lambda oid: (oid.endswith(".dir"), oid))
        remote = self._remote
        return DvcRemoval(
            versions=versions,
            objects=sorted(objects),
            shared=sorted(shared),
            cache=_delete_objects(self._cache, doomed, str(self._cache.path)),
            remote=_delete_objects(remote, doomed, self.remote_url),
        )

    def missing_objects(self) -> dict[str, list[str]]:
        """Objects the remaining versions need but the cache or the remote lacks (empty when whole)."""
        needed = sorted(self.referenced_objects())
        return {
            name: [oid for oid in needed if not odb.fs.exists(odb.oid_to_path(oid))]
            for name, odb in (("cache", self._cache), ("remote", self._remote))
        }


def _delete_objects(odb: Any, oids: list[str], location: str) -> ObjectRemoval:
    """Delete ``oids`` from one object database; on S3, every version of each (a versioned bucket keeps a
    deleted object's bytes as an older version), also of objects whose current version is gone already."""
    removal = ObjectRemoval(location)
    on_s3 = _on_s3(odb)
    for oid in oids:
        path = odb.oid_to_path(oid)
        exists = bool(odb.fs.exists(path))
        if exists:
            removal.bytes += int(odb.fs.size(path) or 0)
        if on_s3:
            bucket, _, key = path.partition("/")
            purge_versions(odb.fs.fs, bucket, key)
            odb.fs.fs.invalidate_cache(path)
        elif exists:
            odb.fs.rm_file(path)
        (removal.objects if exists else removal.absent).append(oid)
    return removal


def _on_s3(odb: Any) -> bool:
    protocol = getattr(odb.fs, "protocol", "")
    return "s3" in ((protocol,) if isinstance(protocol, str) else tuple(protocol))
