"""Tell a changed call-store file from an unchanged one by what its listing says, so ingest reads only what changed.

A listing entry (``fs.ls(..., detail=True)`` / ``fs.find(..., detail=True)``) carries, depending on the
file system, a content or version identity (S3 ``ETag``, GCS ``md5Hash``/``generation``) or a modification
time (local ``mtime`` with the inode, S3 ``LastModified``, ``updated``) beside the size. The signature is
the identity when the listing has one (an identical re-upload then reads as unchanged), else size and time.
A listing that says nothing that changes with the content (size alone) gives no signature: such files
are read on every run, as before, because a same-size rewrite would otherwise go unnoticed.

The signature is a hint to skip reading, never the judge: a file whose signature changed is read and
its content digest decides whether it really changed (a touched file counts as already seen).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

MISSING = "missing"  # the signature of a file that is not there (an audio file a call names but the store lacks)

# Keys compared lowercased; the first one a listing has wins.
_IDENTITY_KEYS = ("etag", "md5hash", "crc32c", "content_md5", "generation", "versionid", "version_id")
_TIME_KEYS = ("mtime", "lastmodified", "last_modified", "updated", "modified", "mtime_ns")


def signature(entry: Mapping[str, Any]) -> str | None:
    """This version of a file as its listing entry identifies it, or None when the entry carries no change signal."""
    fields = {str(key).lower(): value for key, value in entry.items() if value not in (None, "")}
    size = fields.get("size")
    for key in _IDENTITY_KEYS:
        if key in fields:
            return f"{key}={_text(fields[key])};size={size}"
    for key in _TIME_KEYS:
        if key in fields:
            inode = f";ino={fields['ino']}" if "ino" in fields else ""  # an atomic replace changes it
            return f"{key}={_text(fields[key])};size={size}{inode}"
    return None


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    return str(value).strip('"')
