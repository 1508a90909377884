"""Shadow mode: the challenger answers the same requests as the champion, off the response path.

The caller only ever gets the champion's answer. After it is sent, the challenger bundle runs
on the same input and the two are compared: whether the intents agree, the change in confidence,
and how many word edits separate the two transcripts. Each comparison is one JSON line in
``<project>/serving/shadow.jsonl`` and a Prometheus counter; neither holds any text, so shadow
records are as free of PII as the metrics.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serving.metrics import ServingMetrics


class ShadowRecorder:
    def __init__(self, path: Path, metrics: ServingMetrics) -> None:
        self.path, self.metrics = path, metrics
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, endpoint: str, champion: dict[str, Any], challenger: dict[str, Any],
               seconds: float) -> dict[str, Any]:
        """Compare two answers to one request (keys ``bundle``, and ``intent``/``confidence``/``text`` where
        the endpoint has them) and keep the comparison, without the text."""
        from training.asr.metrics import utterance_errors

        row: dict[str, Any] = {"at": datetime.now(UTC).isoformat(timespec="milliseconds"), "endpoint": endpoint,
                               "champion": champion["bundle"], "challenger": challenger["bundle"],
                               "challenger_seconds": round(seconds, 4)}
        if "intent" in champion:
            row["intent_agrees"] = champion["intent"] == challenger["intent"]
            row["champion_intent"], row["challenger_intent"] = champion["intent"], challenger["intent"]
            both = (champion["confidence"], challenger["confidence"])  # None: no speech, no intent
            row["confidence_change"] = round(both[1] - both[0], 4) if None not in both else None
            self.metrics.shadow.labels(endpoint, str(row["intent_agrees"]).lower()).inc()
        else:
            self.metrics.shadow.labels(endpoint, "n/a").inc()
        if "text" in champion:
            [edits] = utterance_errors([champion["text"]], [challenger["text"]])
            row["transcript_word_edits"], row["champion_words"] = edits.errors, edits.ref_words
            self.metrics.shadow_word_edits.observe(edits.errors)
        with self._lock, self.path.open("a") as out:
            out.write(json.dumps(row) + "\n")
        return row

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


