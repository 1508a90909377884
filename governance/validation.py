"""Validate redacted calls with Great Expectations, one row per turn.

The suite checks the schema, the audio facts measured at ingest (readable, sample rate,
duration, and that a customer turn with text is not silence), turn timings, transcript length and
the label set. A failing row is quarantined
with the names of the expectations it failed; only passing rows go on to the datasets.
:func:`validate_redacted` is the step the retrain flow and the ``build-datasets`` DVC stage both run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import great_expectations as gx
import great_expectations.expectations as gxe
import pandas as pd
from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

from core.corpus import intent_names
from core.settings import ValidationConfig
from governance.consent import trainable_call_ids
from governance.store import GovernedStore

ROW_ID = "row_id"
QUARANTINED_STATE = "validation-quarantined"  # items already quarantined: a re-run does not add them again
REQUIRED = ["call_id", "turn", "speaker", "text", "sample_rate", "duration_s", "start_s", "end_s", "split"]


@dataclass
class ValidationReport:
    rows: int
    passed: pd.DataFrame
    failures: dict[int, list[str]] = field(default_factory=dict)  # row id -> expectations failed
    expectations: int = 0


def turn_rows(documents: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten redacted calls into one row per turn, carrying the call-level facts."""
    rows = []
    for doc in documents:
        audio = doc.get("audio", {})
        meta = doc.get("meta", {})
        for turn in doc["turns"]:
            rows.append(
                {
                    "call_id": doc["call_id"],
                    "turn": turn["index"],
                    "speaker": turn["speaker"],
                    "text": turn["text"],
                    "transcript": turn.get("transcript"),
                    "intent": turn.get("intent"),
                    "start_s": float(turn["start_s"]),
                    "end_s": float(turn["end_s"]),
                    "sample_rate": audio.get("sample_rate"),
                    "channels": audio.get("channels"),
                    "duration_s": audio.get("duration_s"),
                    "audio_end_margin_s": (audio.get("duration_s") or 0.0) + 0.5 - float(turn["end_s"]),
                    "split": doc["split"],
                    "voice": meta.get("voice"),
                    "channel": meta.get("channel"),
                    "snr_db": meta.get("snr_db"),
                    "speech_dbfs": turn.get("speech_dbfs"),  # customer turns, measured on the raw audio
                }
            )
    frame = pd.DataFrame(rows, columns=[*REQUIRED, "transcript", "intent", "channels", "audio_end_margin_s",
                                        "voice", "channel", "snr_db", "speech_dbfs"])
    frame[ROW_ID] = range(len(frame))
    return frame


def build_suite(config: ValidationConfig, label_set: list[str]) -> list[Any]:
    """The expectations, in the order their names appear in quarantine reasons."""
    return [
        *[gxe.ExpectColumnValuesToNotBeNull(column=c) for c in ["call_id", "speaker", "text", "sample_rate",
                                                                  "duration_s"]],
        gxe.ExpectColumnValuesToBeInSet(column="speaker", value_set=["customer", "bot", "agent"]),
        gxe.ExpectColumnValuesToBeInSet(column="sample_rate", value_set=config.sample_rates),
        gxe.ExpectColumnValuesToBeBetween(column="channels", min_value=1, max_value=2),
        gxe.ExpectColumnValuesToBeBetween(
            column="duration_s", min_value=config.min_duration_s, max_value=config.max_duration_s
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="end_s", column_B="start_s"),
        gxe.ExpectColumnValuesToBeBetween(column="audio_end_margin_s", min_value=0),
        gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=config.min_chars, max_value=config.max_chars),
        gxe.ExpectColumnValuesToBeBetween(column="speech_dbfs", min_value=config.min_speech_dbfs),
        gxe.ExpectColumnValuesToBeInSet(column="intent", value_set=label_set),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=["train", "golden"]),
    ]


def validate_turns(frame: pd.DataFrame, config: ValidationConfig, label_set: list[str]) -> ValidationReport:
    """Run the suite on ``frame``; split it into passing rows and per-row failure reasons."""
    if frame.empty:
        return ValidationReport(rows=0, passed=frame)
    expectations = build_suite(config, label_set)
    failures = run_expectations(frame, expectations, "voiceloop_turns")
    passed = frame[~frame[ROW_ID].isin(failures)].reset_index(drop=True)
    return ValidationReport(rows=len(frame), passed=passed, failures=failures, expectations=len(expectations))


def expectation_name(expectation: ExpectationConfiguration) -> str:
    """How quarantine reasons name an expectation: its ``meta.label``, else ``type(column)``."""
    if expectation.meta and expectation.meta.get("label"):
        return str(expectation.meta["label"])
    kwargs = expectation.kwargs
    column = kwargs.get("column") or f"{kwargs.get('column_A')}>{kwargs.get('column_B')}"
    return f"{expectation.type}({column})"


def run_expectations(frame: pd.DataFrame, expectations: list[Any], suite_name: str) -> dict[int, list[str]]:
    """Run expectations on ``frame`` (which has a ``row_id`` column) in an ephemeral GX context.

    Returns row id -> names of the expectations that row failed, as ``type(column)``.
    """
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False, "metric_calculations": False}  # type: ignore[assignment]
    batch = (
        context.data_sources.add_pandas("voiceloop")
        .add_dataframe_asset(suite_name)
        .add_batch_definition_whole_dataframe("batch")
    )
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name, expectations=expectations))
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=suite_name, data=batch, suite=suite))
    result = definition.run(
        batch_parameters={"dataframe": frame},
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [ROW_ID]},
    )
    failures: dict[int, list[str]] = {}
    for outcome in result.results:
        if outcome.success:
            continue
        expectation = outcome.expectation_config
        assert expectation is not None  # GX fills it for every result of a suite run
        name = expectation_name(expectation)
        indices = outcome.result.get("unexpected_index_list")
        if indices is None:  # a table-level failure: every row fails it
            indices = [{ROW_ID: r} for r in frame[ROW_ID]]
        for item in indices:
            failures.setdefault(int(item[ROW_ID]), []).append(name)
    return failures


def validate_redacted(store: GovernedStore, config: ValidationConfig) -> ValidationReport:
    """The validation step: every redacted turn of a call whose consent stands through the suite, new failures
    quarantined with the expectations they failed (each once, whatever the number of re-runs); ``store`` acts
    for validation. Its passing rows are all the datasets are built from, so a withdrawn call is in none."""
    frame = turn_rows([document for document in store.read_redacted(trainable_call_ids(store))
                       if document.get("consent_training", True)])
    report = validate_turns(frame, config, list(intent_names()))
    already = set(store.read_state(QUARANTINED_STATE).get("items", []))
    for row_id, failed in report.failures.items():
        row = frame[frame[ROW_ID] == row_id].iloc[0]
        item = f"{row['call_id']}.turn{row['turn']}"
        if item not in already:
            store.quarantine("validation", item, "failed " + ", ".join(failed), call_id=row["call_id"],
                             payload=row.drop(ROW_ID).to_dict())
            already.add(item)
    store.write_state(QUARANTINED_STATE, {"items": sorted(already)})
    return report
