"""Redact a stream of ``{id, text, ...}`` records in batches: what ``voiceloop redact`` runs on JSON Lines.

Each record comes back with every field it had, plus ``redacted`` (PII replaced by ``<TYPE>``),
``entities`` (type, start, end, score: character offsets into ``text``) and, when asked, ``leaks``
(the entity types the independent leak check still finds in ``redacted``). Records are redacted
``batch`` at a time, so a stream of any length is handled in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from governance.redaction.leaks import find_leaks
from governance.redaction.redactor import Redactor

BATCH = 256


def redact_records(redactor: Redactor, records: Iterable[dict[str, Any]], check_leaks: bool = False,
                   batch: int = BATCH) -> Iterator[dict[str, Any]]:
    """The records, in order, each with its redaction added (see the module docstring)."""
    stream = iter(records)
    while chunk := list(islice(stream, batch)):
        for record, result in zip(chunk, redactor.redact_many([r["text"] for r in chunk]), strict=True):
            out = {**record, "redacted": result.redacted,
                   "entities": [{"type": e.type, "start": e.start, "end": e.end, "score": e.score}
                                for e in result.entities]}
            if check_leaks:
                out["leaks"] = find_leaks(result.redacted)
            yield out
