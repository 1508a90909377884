"""Every version of an S3 object: on a versioned bucket a delete only hides data, so erasure deletes each version.

S3 keeps the earlier versions of an overwritten or deleted object (and a delete marker for the
delete) when the bucket has versioning enabled or suspended. Deleting ``key`` then removes nothing:
the caller's bytes stay one ``GetObject?versionId=`` away. :func:`purge_versions` deletes every
version and delete marker of a key (or of every key under a folder key) by version id, which is
permanent; :func:`purge_older_versions` keeps only the current one (for objects rewritten to forget
something). Both work on unversioned buckets too (S3 lists their objects with version id ``null``).

Needs ``s3:ListBucketVersions`` and ``s3:DeleteObjectVersion`` on the bucket: without them a purge
fails with :class:`VersionPurgeError`, never silently half-done.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_BATCH = 1000  # DeleteObjects takes at most 1000 keys a request


class VersionPurgeError(RuntimeError):
    """The bucket refused to list or delete object versions: erasure cannot be proven complete."""


@dataclass(frozen=True)
class ObjectVersion:
    key: str  # the S3 key, in its bucket
    version_id: str
    latest: bool
    delete_marker: bool


def bucket_is_versioned(fs: Any, bucket: str) -> bool:
    """Whether the bucket has (or had: ``Suspended``) versioning; when it cannot be asked, assume it has."""
    try:
        status = fs.call_s3("get_bucket_versioning", Bucket=bucket).get("Status")
    except Exception:  # no right to ask, or an S3 that lacks the call: take the safe side
        return True
    return status in ("Enabled", "Suspended")


def object_versions(fs: Any, bucket: str, key: str) -> list[ObjectVersion]:
    """Every version and delete marker of ``key`` itself or of the keys under ``key + "/"``."""
    return [version for version in _listed(fs, bucket, key)
            if version.key == key or version.key.startswith(key.rstrip("/") + "/")]


def _listed(fs: Any, bucket: str, prefix: str) -> Iterator[ObjectVersion]:
    markers: dict[str, str] = {}
    while True:
        try:
            page = fs.call_s3("list_object_versions", Bucket=bucket, Prefix=prefix, **markers)
        except Exception as error:
            raise VersionPurgeError(f"cannot list the versions of s3://{bucket}/{prefix} ({error}); the store needs "
                                    "s3:ListBucketVersions to erase data for good") from error
        for entries, deleted in ((page.get("Versions", []), False), (page.get("DeleteMarkers", []), True)):
            for entry in entries:
                yield ObjectVersion(entry["Key"], entry["VersionId"], bool(entry.get("IsLatest")), deleted)
        if not page.get("IsTruncated"):
            return
        markers = {"KeyMarker": page["NextKeyMarker"], "VersionIdMarker": page["NextVersionIdMarker"]}


def delete_versions(fs: Any, bucket: str, versions: list[ObjectVersion]) -> None:
    """Delete these versions for good, in the order given, in batches; any refusal raises."""
    for start in range(0, len(versions), _BATCH):
        batch = versions[start:start + _BATCH]
        objects = [{"Key": v.key, "VersionId": v.version_id} for v in batch]
        try:
            response = fs.call_s3("delete_objects", Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
        except Exception as error:
            raise VersionPurgeError(f"cannot delete object versions in s3://{bucket} ({error}); the store needs "
                                    "s3:DeleteObjectVersion to erase data for good") from error
        if response.get("Errors"):
            first = response["Errors"][0]
            raise VersionPurgeError(f"s3://{bucket} kept {len(response['Errors'])} object version(s), e.g. "
                                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}")


def purge_versions(fs: Any, bucket: str, key: str, first: tuple[str, ...] = ()) -> list[ObjectVersion]:
    """Delete every version of ``key`` (a file key, or a folder key and all below it); returns what went.

    Keys whose file name is in ``first`` go before the others (a call's document, a version's manifest:
    what makes the rest part of the zone), so a killed purge never leaves a half-present item.
    """
    versions = object_versions(fs, bucket, key)
    versions.sort(key=lambda v: (v.key.rsplit("/", 1)[-1] not in first, v.key))
    delete_versions(fs, bucket, versions)
    return versions


def purge_older_versions(fs: Any, bucket: str, key: str) -> int:
    """Delete every version of the file ``key`` but the current one; returns how many went."""
    older = [v for v in object_versions(fs, bucket, key) if v.key == key and not v.latest]
    delete_versions(fs, bucket, older)
    return len(older)
