"""No PII through the side doors: after a real retrain, no caller id and no spoken PII value is
readable in clear anywhere in the project (logs, audit and MLflow databases, MLflow artifacts, DVC
cache and remote, datasets, state files) nor in Prefect's database (task parameters, results,
logs). Raw and quarantined call data exist only encrypted, which is the point.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.flow_helpers import TrainedProject, trained_template


@pytest.fixture(scope="module")
def project(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> TrainedProject:
    return trained_template(tiny_corpus, tmp_path_factory)  # read only here: the shared template is enough


def _distinctive(word: str) -> bool:
    """A name or a word of no English list: searching for it cannot hit innocent text ("six", "mark" can)."""
    from governance.redaction.leak_words import word_class

    return word_class(word.lower()) in ("FN", "LN", "UW")


def _pii_needles(sources: Path) -> dict[str, bytes]:
    """Every caller id, every PII span (as spoken, from the human transcripts) of every call, and each
    distinctive word of a span on its own: first names ("andrew"), surnames, e-mail names, whatever their length."""
    needles: dict[str, bytes] = {}
    for path in sorted(sources.glob("*/*.json")):
        call: dict[str, Any] = json.loads(path.read_text())
        needles[f"caller id of {call['call_id']}"] = call["caller_id"].encode()
        for label in call.get("labels", []):
            for span in label.get("pii", []):
                value = label["transcript"][span["start"]:span["end"]].strip()
                where = f"{span['entity']} in {call['call_id']} turn {label['turn']}"
                needles[where] = value.encode()
                # and each distinctive word of it on its own: a first name alone, a surname, an e-mail's name
                name = value.split(" at ")[0]  # an e-mail's name, not its provider
                for word in sorted({w for w in re.findall(r"[^\W\d_]+", name) if _distinctive(w)}):
                    needles[f"{where}: {word}"] = word.encode()
    return needles


def _prefect_database() -> Path:
    from prefect.settings import get_current_settings

    url = str(get_current_settings().server.database.connection_url.get_secret_value())
    return Path(url.split("///", 1)[1])


def _clear_text_hits(files: list[Path], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """Needle -> files holding it as a whole token (any case): "anna" in "annapolis" is no hit, "Anna" is."""
    patterns = {name: re.compile(rb"(?<![a-z0-9])" + re.escape(needle.lower()) + rb"(?![a-z0-9])")
                for name, needle in needles.items()}
    hits: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes().lower()
        for name, pattern in patterns.items():  # a plain search first: the token check only where it is there
            if needles[name].lower() in data and pattern.search(data):
                hits.setdefault(name, []).append(str(path))
    return hits


def _call_transcripts_only(files: list[Path], project: TrainedProject, scratch: Path) -> list[Path]:
    """``files`` with each kept champion ASR record cut to its transcripts of the golden calls.

    Such a record (beside the golden version: training/promotion.py) holds the model's transcripts of the
    golden turns, then of the public digit strings and clean-speech recordings, whose LibriVox text says
    "mister john dashwood" whatever the calls said. Only the first are call data; they are still searched.
    """
    from governance.session import open_store
    from training.datasets import open_version

    store = open_store(project.settings, "ml-engineer", "evaluation")
    out = []
    for path in files:
        if path.name.startswith("champion-asr-") and path.parent.name.endswith(".evaluations"):
            rows = open_version(store, path.parent.parent.name, path.parent.name.split(".")[0]).rows
            record = json.loads(path.read_text())
            record["texts"] = record["texts"][:rows]
            path = scratch / f"{len(out)}-{path.name}"
            path.write_text(json.dumps(record))
        out.append(path)
    return out


def test_no_caller_id_or_pii_value_is_readable_anywhere(project: TrainedProject, tmp_path: Path) -> None:
    needles = _pii_needles(project.sources)
    assert any(name.startswith("caller id") for name in needles) and any("in call-" in n for n in needles)
    assert any(name.startswith("PERSON") and len(needle) < 8 for name, needle in needles.items())  # first names alone
    # the search itself works: every needle is found in the call store it came from
    assert set(_clear_text_hits(sorted(project.sources.glob("*/*.json")), needles)) == set(needles)
    root = project.settings.root
    # Whisper's tokenizer files travel with every ASR export: the public base model's BPE vocabulary, never
    # trained, which holds thousands of names as tokens ("aaron", "perkins") whatever the calls said.
    tokenizers = {"tokenizer.json", "vocabulary.json"}
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".enc") and p.name not in tokenizers]
    database = _prefect_database()
    files += [p for p in database.parent.glob(database.name + "*") if p.is_file()]  # the db and its WAL
    assert any(p.name == "mlflow.db" for p in files) and any(p.name == "audit.db" for p in files)
    assert _clear_text_hits(_call_transcripts_only(files, project, tmp_path), needles) == {}


def test_raw_and_quarantine_hold_call_data_only_encrypted(project: TrainedProject) -> None:
    zones = project.settings.zones_dir
    raw_files = [p for p in (zones / "raw").rglob("*") if p.is_file()]
    assert raw_files, "the flow should have ingested calls"
    clear = [p for p in raw_files if not p.name.endswith(".enc") and p.name != "meta.json"]
    assert clear == []
    quarantined = [p for p in (zones / "quarantine").rglob("*") if p.is_file()]
    assert all(p.name.endswith(".enc") or p.name == "reason.json" for p in quarantined)
