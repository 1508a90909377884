"""The weekly QA review's two Label Studio round trips at full size: pushing the week's tasks, pulling the reviews.

A synthetic project (``--calls`` production calls of one ISO week, 200 by default) is written straight
through the governed store, as the pipeline would leave it: per call a redacted document (three
customer and three bot turns, consented, ``split: train``), a second of redacted audio (a tone, WAV),
and the monitor's per-call record with the bot's log (intent, confidence, bundle) on the first customer
turn; beside it, the simulator's truth files for the simulated reviewers. The week's sample takes every
call (``draw_week`` with a budget >= N: 30% blind, 10% double). A real Label Studio
(``.venv-labelstudio``) runs on a free 127.0.0.1 port, serving the work folder, and is stopped at the end.

Per repeat, on a fresh copy of the project and a fresh Label Studio project title (so every push is real):

* ``push_s``: ``push_week`` (the redacted audio exported to the review media folder, the tasks imported);
* ``simulate_s``: ``simulate_review`` (the demo's reviewers answering through the API; not part of the bar);
* ``pull_s``: ``pull_reviews`` as ``voiceloop qa pull`` runs it, with a fresh ``Redactor`` whose
  analyzer cache was cleared first, so the spaCy/Presidio model load is inside the time;
* ``pull_s_warm_redactor``: the same pull on a second copy of the project (taken after the reviews
  were made), with a ``Redactor`` built beforehand and passed in (``redactor_load_s``: that build).

Both pulls include reading the tasks back, reconciling, redacting what reviewers typed, the leak gate
and writing the labels. Audit appends (each one a committed, fsynced chain entry) and HTTP requests
to Label Studio are counted and timed inside each step. ``import_s`` and ``first_redactor_s``: importing
``flows.qa_review``, then building the first ``Redactor``, in a fresh interpreter (disk caches warm): what a
``voiceloop qa`` command pays before the figures above (the in-process cold pull reloads the model, not
the imports).
Bar (issue 19): pushing 200 tasks and pulling 200 reviews each take under 30 s.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/qa_push_pull.py
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from common import emit, scratch  # benchmarks/common.py

from core.corpus import intent_names
from core.settings import Settings
from flows.qa_review import pull_reviews, push_week
from flows.qa_sample import call_risk, design_of
from flows.qa_simulate import simulate_review
from governance.audit import AuditLog
from governance.redaction import engine as redaction_engine
from governance.redaction.redactor import Redactor
from governance.session import open_store
from monitoring.signals import CallSignals, TurnSignal
from qa.labels_zone import SAMPLE_KIND
from qa.sampling import derive_thresholds
from qa.simulated_reviewer import ReviewerNoise
from qa.studio import LocalLabelStudio
from qa.studio_api import StudioClient
from qa.weekly_sample import draw_week
from qa.weeks import parse_week

REPO = Path(__file__).resolve().parents[1]
BAR_S = 30.0
ROLE = "ml-engineer"
BUNDLE = "bundle-bench-1"
CHANNELS = ("clean16k", "telephone8k", "gsm-noisy8k")
VOICES = ("en-us+m1", "en-us+f2", "en-gb+f4", "en-in+m3")
NAMES = ("Maria Lopez", "John Carter", "Aisha Khan", "Peter Novak", "Grace Chen", "Tom Becker")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tone_wav(seconds: float = 1.0, rate: int = 8000, hz: float = 440.0) -> bytes:
    """A second of a sine tone, 16-bit mono: the stand-in for a call's masked audio."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.3 * 32767 * np.sin(2 * math.pi * hz * t)).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return buffer.getvalue()


def _settings(project: Path, files_root: Path, url: str = "", token: str = "", title: str = "") -> Settings:
    return Settings(project_dir=str(project), qa={"label_studio_url": url, "label_studio_token": token,
                                                  "label_studio_files_root": str(files_root),
                                                  "project_title": title or "voiceloop QA benchmark"})


def _call(i: int, week: str, intents: tuple[str, ...], rng: np.random.Generator) -> dict[str, Any]:
    """One call's content: (speaker, truth transcript, redacted text, intent, PII spans) per turn, and its facts."""
    monday, _ = parse_week(week)
    started = datetime.combine(monday, datetime.min.time(), UTC) + timedelta(seconds=int(rng.integers(0, 7 * 86400)))
    intent = str(intents[int(rng.integers(0, len(intents)))])
    name = NAMES[i % len(NAMES)]
    card = " ".join(f"{int(rng.integers(0, 10000)):04d}" for _ in range(4))
    detail_prefix = "my name is "
    detail = f"{detail_prefix}{name} and my card number is {card}"
    pii = [{"entity": "PERSON", "start": len(detail_prefix), "end": len(detail_prefix) + len(name)},
           {"entity": "CREDIT_CARD", "start": detail.index(card), "end": detail.index(card) + len(card)}]
    turns = [
        ("customer", f"hello I need some help with {intent.replace('_', ' ')} please", None, intent, []),
        ("bot", "I can help with that. Can I have your name and card number?", None, None, []),
        ("customer", detail, "my name is <PERSON> and my card number is <CREDIT_CARD>", "no_request", pii),
        ("bot", "Thank you, I have found your account and sorted that out for you.", None, None, []),
        ("customer", "great thank you very much", None, "no_request", []),
        ("bot", "You're welcome, goodbye.", None, None, []),
    ]
    return {"call_id": f"bench-{week}-{i:04d}", "caller_id": f"caller-{i % 170:03d}", "started_at": started.isoformat(),
            "intent": intent, "turns": turns, "channel": CHANNELS[i % 3], "voice": VOICES[i % 4],
            "confidence": round(float(rng.uniform(0.3, 0.99)), 3), "logprob": round(float(rng.uniform(-0.8, -0.1)), 3)}


def build_project(project: Path, truth_dir: Path, files_root: Path, calls: int, week: str, seed: int) -> dict[str, Any]:
    """The synthetic project: redacted calls and audio, monitoring records, truth files and the week's sample."""
    settings = _settings(project, files_root)
    rng = np.random.default_rng(seed)
    intents = intent_names()
    made = [_call(i, week, intents, rng) for i in range(calls)]
    redaction = open_store(settings, "admin", "redaction")
    audio = tone_wav()
    documents, records = [], {}
    truth_dir.mkdir(parents=True, exist_ok=True)
    for call in made:
        caller_ref = redaction.caller_ref(call["caller_id"])
        turns, signals, clock = [], [], 0.0
        for index, (speaker, spoken, redacted, _intent, pii) in enumerate(call["turns"]):
            start, end = clock, clock + 2.5
            clock = end + 0.4
            turn: dict[str, Any] = {"index": index, "speaker": speaker, "start_s": round(start, 2),
                                    "end_s": round(end, 2), "text": redacted or spoken, "transcript": None,
                                    "intent": None, "speech_dbfs": -24.0 if speaker == "customer" else None,
                                    "pii_types": sorted({s["entity"] for s in pii})}
            if index == 1:
                turn["bot"] = {"turn": 0, "intent": call["intent"], "confidence": call["confidence"],
                               "bundle": BUNDLE, "asr": {"avg_logprob": call["logprob"], "no_speech_prob": 0.01}}
            turns.append(turn)
            if speaker == "customer":
                logged = index == 0
                signals.append(TurnSignal(
                    index=index, duration_s=2.5, dbfs=-24.0, source="bot-log" if logged else "none",
                    intent=call["intent"] if logged else None, confidence=call["confidence"] if logged else None,
                    avg_logprob=call["logprob"] if logged else None, no_speech_prob=0.01 if logged else None,
                    bundle=BUNDLE if logged else None, latency_ms=400.0))
        documents.append({"call_id": call["call_id"], "started_at": call["started_at"], "caller_ref": caller_ref,
                          "split": "train", "consent_training": True, "outcome": "contained",
                          "meta": {"voice": call["voice"], "channel": call["channel"], "snr_db": 20.0},
                          "audio": {"duration_s": round(clock, 2), "sample_rate": 8000},
                          "raw_digest": f"bench-{call['call_id']}", "turns": turns, "quarantined_turns": 0})
        records[call["call_id"]] = CallSignals(
            call_id=call["call_id"], caller_ref=caller_ref, started_at=call["started_at"], consent_training=True,
            channel=call["channel"], voice=call["voice"], duration_s=round(clock, 2), outcome="contained",
            turns=signals, sentiment_start=0.1, sentiment_end=0.4).to_record()
        (truth_dir / f"{call['call_id']}.json").write_text(json.dumps({
            "call_id": call["call_id"], "started_at": call["started_at"], "caller_id": call["caller_id"],
            "intent": call["intent"], "resolved": True, "outcome": "contained",
            "turns": [{"turn": i, "speaker": speaker, "transcript": spoken,
                       **({"intent": intent, "pii": pii} if speaker == "customer" else {})}
                      for i, (speaker, spoken, _, intent, pii) in enumerate(call["turns"])]}))
    redaction.write_redacted(documents)
    for document in documents:
        redaction.write_redacted_audio(document["call_id"], audio, ".wav")
    open_store(settings, "admin", "monitoring").write_monitoring("calls", records)
    signals_of = [CallSignals.from_record(r) for r in records.values()]
    design = design_of(settings, float(calls))
    sample = draw_week(week, [call_risk(s, None) for s in signals_of], {s.call_id: s.caller_ref for s in signals_of},
                       derive_thresholds([], design), design, (), seed)
    if len(sample.calls) != calls:
        raise SystemExit(f"the sample took {len(sample.calls)} of {calls} calls; expected all")
    open_store(settings, "admin", "labelling").write_labels(SAMPLE_KIND, {week: sample.to_record()})
    return {"calls": calls, "sampled": len(sample.calls), "blind": sum(c.blind for c in sample.calls),
            "double": sum(c.double for c in sample.calls)}


def copy_project(source: Path, target: Path) -> None:
    """A copy of a project folder, its audit database checkpointed first so the copy holds the whole chain."""
    database = source / "audit.db"
    if database.exists():
        with sqlite3.connect(database) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.lock"))


class Meter:
    """Counts and times audit appends and Label Studio HTTP requests while a step runs."""

    def __init__(self) -> None:
        self.counts = {"audit": 0, "http": 0}
        self.seconds = {"audit": 0.0, "http": 0.0}

    def _wrap(self, kind: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.counts[kind] += 1
                self.seconds[kind] += time.perf_counter() - started
        return timed

    @contextmanager
    def watching(self) -> Iterator[Meter]:
        append, call = AuditLog.append, StudioClient._call
        AuditLog.append = self._wrap("audit", append)  # type: ignore[method-assign]
        StudioClient._call = self._wrap("http", call)  # type: ignore[method-assign]
        try:
            yield self
        finally:
            AuditLog.append, StudioClient._call = append, call  # type: ignore[method-assign]

    def figures(self, prefix: str) -> dict[str, float | int]:
        return {f"{prefix}_audit_appends": self.counts["audit"], f"{prefix}_audit_s": round(self.seconds["audit"], 2),
                f"{prefix}_http_requests": self.counts["http"], f"{prefix}_http_s": round(self.seconds["http"], 2)}


def timed(step: Callable[[], Any]) -> tuple[Any, float, Meter]:
    meter = Meter()
    with meter.watching():
        started = time.perf_counter()
        result = step()
        seconds = time.perf_counter() - started
    return result, seconds, meter


def fresh_process_seconds() -> dict[str, float]:
    """In a fresh interpreter: importing flows.qa_review (Presidio, spaCy, pandas, ...), then the first Redactor
    (the spaCy model and the recognizers loaded): what a ``voiceloop qa pull`` process pays before its work."""
    code = ("import time; t = time.perf_counter(); import flows.qa_review; i = time.perf_counter() - t; "
            "from core.settings import RedactionConfig; from governance.redaction.redactor import Redactor; "
            "c = RedactionConfig(); t = time.perf_counter(); Redactor(c, entities=c.entities); "
            "print(i, time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    imported, loaded = (float(x) for x in done.stdout.strip().splitlines()[-1].split())
    return {"import_s": round(imported, 2), "first_redactor_s": round(loaded, 2)}


def one_repeat(repeat: int, work: Path, template: Path, truth: Path, connection: Any, week: str,
               stamp: str) -> dict[str, Any]:
    first, second = work / f"repeat-{repeat}", work / f"repeat-{repeat}-warm"
    copy_project(template, first)
    title = f"voiceloop QA benchmark {stamp} repeat {repeat}"
    settings = _settings(first, work, connection.url, connection.token, title)
    pushed, push_s, push_meter = timed(lambda: push_week(settings, ROLE, week))
    simulated, simulate_s, simulate_meter = timed(
        lambda: simulate_review(settings, ROLE, truth, ReviewerNoise(), seed=0, week=week))
    copy_project(first, second)
    redaction_engine.get_analyzer.cache_clear()  # the cold pull loads the spaCy/Presidio model, as a new process does
    pulled, pull_s, pull_meter = timed(lambda: pull_reviews(settings, ROLE, week))
    redaction_engine.get_analyzer.cache_clear()
    started = time.perf_counter()
    redactor = Redactor(settings.redaction, entities=settings.redaction.entities)
    load_s = time.perf_counter() - started
    warm_settings = _settings(second, work, connection.url, connection.token, title)
    warm, warm_s, warm_meter = timed(lambda: pull_reviews(warm_settings, ROLE, week, redactor=redactor))
    if pushed.pushed + pushed.already != len(pulled.quarantined) + pulled.labelled + len(pulled.pii_flagged) + \
            pulled.waiting + len(pulled.adjudication):
        print(f"repeat {repeat}: pushed and pulled counts differ: {pushed} / {pulled}", file=sys.stderr)
    return dict(repeat=repeat, tasks=pushed.pushed, blind=pushed.blind, no_audio=len(pushed.no_audio),
                push_s=round(push_s, 2), **push_meter.figures("push"),
                annotations=simulated.answered, adjudicated=simulated.adjudicated, simulate_s=round(simulate_s, 2),
                **simulate_meter.figures("simulate"),
                labelled=pulled.labelled, quarantined=len(pulled.quarantined), pii_flagged=len(pulled.pii_flagged),
                waiting=pulled.waiting, adjudication=len(pulled.adjudication),
                pull_s=round(pull_s, 2), **pull_meter.figures("pull"),
                redactor_load_s=round(load_s, 2), labelled_warm=warm.labelled,
                pull_s_warm_redactor=round(warm_s, 2), **warm_meter.figures("pull_warm"))


def run(work: Path, args: argparse.Namespace) -> None:
    emit(figure="qa_push_pull_machine", cpus=os.cpu_count(), load_average=[round(x, 2) for x in os.getloadavg()],
         omp_num_threads=os.environ.get("OMP_NUM_THREADS"), **fresh_process_seconds())
    template, truth = work / "template", work / "truth"
    started = time.perf_counter()
    built = build_project(template, truth, work, args.calls, args.week, args.seed)
    emit(figure="qa_push_pull_project", week=args.week, build_s=round(time.perf_counter() - started, 1), **built)
    venv = Path(args.studio_venv).resolve()
    studio = LocalLabelStudio(work / "label-studio", free_port(), venv, media_root=work)
    started = time.perf_counter()
    try:
        connection = studio.start(timeout_s=300.0).connection
        emit(figure="qa_push_pull_studio_start", seconds=round(time.perf_counter() - started, 1))
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        rows = []
        for repeat in range(1, args.repeats + 1):
            rows.append(one_repeat(repeat, work, template, truth, connection, args.week, stamp))
            emit(figure="qa_push_pull_repeat", **rows[-1])
    finally:
        studio.stop()

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 2)

    push_s, pull_s, warm_s = median("push_s"), median("pull_s"), median("pull_s_warm_redactor")
    emit(figure="qa_push_pull", repeats=args.repeats, tasks=rows[0]["tasks"], labelled=rows[0]["labelled"],
         push_s=push_s, push_s_range=[min(r["push_s"] for r in rows), max(r["push_s"] for r in rows)],
         simulate_s=median("simulate_s"), pull_s=pull_s,
         pull_s_range=[min(r["pull_s"] for r in rows), max(r["pull_s"] for r in rows)],
         pull_s_warm_redactor=warm_s, redactor_load_s=median("redactor_load_s"),
         push_audit_appends=rows[0]["push_audit_appends"], push_audit_s=median("push_audit_s"),
         pull_audit_appends=rows[0]["pull_audit_appends"], pull_audit_s=median("pull_audit_s"),
         bar_s=BAR_S, push_bar_met=push_s < BAR_S, pull_bar_met=pull_s < BAR_S,
         pull_warm_bar_met=warm_s < BAR_S, load_average_after=[round(x, 2) for x in os.getloadavg()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200, help="production calls of the week, all sampled")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--week", default="2026-W46")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--studio-venv", default=str(REPO / ".venv-labelstudio"))
    parser.add_argument("--work", help="a folder to work in (kept); default: a temporary one, removed")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.work:
        work = Path(args.work).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if any(work.iterdir()):
            raise SystemExit(f"{work} is not empty: give an empty or new folder")
        run(work, args)
    else:
        with scratch("qa-push-pull-", keep=args.keep) as work:
            run(work.resolve(), args)


if __name__ == "__main__":
    main()
