"""Timed words of a redacted transcript: a PII value's words become one ``<TYPE>`` word over their time.

``/v1/transcribe`` answers a key without the ``transcription`` purpose with the redacted text; its
word list must not give the value back word by word. The ASR's words are aligned to the text
(governance/redaction/audio.py ``align_words``, as audio redaction does), and every run of words
inside one redacted entity is replaced by the entity's placeholder, timed from its first word's
start to its last word's end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.asr import Word
from core.audio import word_json
from governance.redaction.audio import align_words
from governance.redaction.redactor import Entity


def redacted_words(text: str, words: Sequence[Word], entities: Sequence[Entity],
                   duration_s: float) -> list[dict[str, Any]]:
    """``text``'s words with times (``word_json`` shape), each entity's words merged into ``<TYPE>``."""
    out: list[dict[str, Any]] = []
    last_entity: Entity | None = None
    for span in align_words(text, words, duration_s):
        entity = next((e for e in entities if span.start < e.end and e.start < span.end), None)
        if entity is None:
            out.append(word_json(Word(text[span.start:span.end], span.start_s, span.end_s, 1.0), duration_s))
        elif entity is last_entity:
            out[-1]["end"] = max(out[-1]["end"], round(min(span.end_s, duration_s), 2))
        else:
            out.append(word_json(Word(f"<{entity.type}>", span.start_s, span.end_s, 1.0), duration_s))
        last_entity = entity
    return out
