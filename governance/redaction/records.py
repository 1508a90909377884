"""Redact a stream of ``{id, text, ...}`` records in batches: what ``voiceloop redact`` runs on JSON Lines.

Each record comes back with every field it had, plus ``redacted`` (PII replaced by ``<TYPE>``),
``entities`` (type, start, end, score: character offsets into ``text``) and, when asked, ``leaks``
(the entity types the independent leak check still finds in ``redacted``). Records are redacted
``batch`` at a time, so a stream of any length is handled in bounded memory; a text longer than
the cap is refused (:class:`TooLong`), so each record is redacted in bounded time too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TYPE_CHECKING, Any

from governance.redaction.leaks import find_leaks

if TYPE_CHECKING:  # the redactor (Presidio, spaCy) is built by the caller: importing the cap stays cheap
    from governance.redaction.redactor import Redactor

BATCH = 256
# Presidio's context enhancer grows with the square of a text's length and its entities: a text of
# written card numbers takes 0.4 s at 2,000 characters, 6 s at 8,000 and 150 s at 24,000 (issue 17).
# 10,000 characters is about ten minutes of speech, tens of turns (a call turn is rarely 500).
MAX_LINE_CHARS = 10_000


class TooLong(ValueError):
    """A text over the length cap; the message says how long, the cap, and what to do."""


def check_length(text: str, max_chars: int, what: str) -> None:
    """Refuse ``text`` (named ``what`` in the message) when it has more than ``max_chars`` characters."""
    if len(text) > max_chars:
        raise TooLong(f"{what}: {len(text):,} characters, over the cap of {max_chars:,} characters "
                      "(redaction time grows with the square of a text's length): split the text into "
                      "shorter ones, a turn or a few each, or raise the cap")


def redact_records(redactor: Redactor, records: Iterable[dict[str, Any]], check_leaks: bool = False,
                   batch: int = BATCH, max_chars: int = MAX_LINE_CHARS) -> Iterator[dict[str, Any]]:
    """The records, in order, each with its redaction added (see the module docstring).

    A record whose ``text`` has more than ``max_chars`` characters stops the stream with :class:`TooLong`.
    """
    stream = iter(records)
    while chunk := list(islice(stream, batch)):
        for record in chunk:
            check_length(record["text"], max_chars, f"record {record.get('id')!r}")
        for record, result in zip(chunk, redactor.redact_many([r["text"] for r in chunk]), strict=True):
            out = {**record, "redacted": result.redacted,
                   "entities": [{"type": e.type, "start": e.start, "end": e.end, "score": e.score}
                                for e in result.entities]}
            if check_leaks:
                out["leaks"] = find_leaks(result.redacted)
            yield out
