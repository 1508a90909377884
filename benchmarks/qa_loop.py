"""The loop in production, end to end (issue 19): a new noisy channel -> alert -> QA -> retrain -> gate -> promotion.

Bar: "at a QA budget of 60 calls a week, after one pass, the drifted slice's true WER (from the truth files)
falls by at least 30% relative, and no other slice is significantly worse."

Phases (each announced on stderr with the elapsed time; every figure one JSON line on stdout):

1. ``template``: with ``--make-template``, build the trained champion at ``--template`` first: the demo corpus
   (``make corpus``: ``--corpus data``, ``params.yaml`` as shipped) or, with ``--tiny``, the tests' tiny corpus
   and tiny model settings (tests/flow_helpers.py ``flow_params``), then ``voiceloop retrain``.
2. ``copy``: the template copied into ``<work>/project`` (benchmarks/monitor_scenarios.py ``_copy_project``, plus
   its DVC config: this project retrains), its call store an empty ``<work>/calls``, the monitor's reference the
   ``min(14, drift day - 1)`` days before the drift.
3. ``stream``: ``voiceloop simulate-calls --production --no-bot-log --drift noisy-channel@DAY:SHARE`` into
   ``<work>/stream/{calls,truth}`` (kept, and reused when its arguments match; rendering is cached in
   ``--cache``). No bot logs: the monitor's champion hears every call, so a promotion shows in its figures.
4. ``studio``: a Label Studio from ``.venv-labelstudio`` on a free 127.0.0.1 port serving the project folder;
   the project's ``qa.label_studio_*`` point at it. Stopped at the end, whatever happens.
5. ``monitor``: the stream's calls enter the call store a week at a time (``--cadence day`` for a day at a time),
   ``voiceloop monitor --json`` after each. Why weekly: the QA loop acts once a week, and the monitor dates its
   figures and alerts by the calls' own days (each run recomputes the days from the per-call records; an alert
   keeps its first day), so a daily cadence finds the same alert day for seven times the per-run cost
   (process start, Prefect, the champion's load, figures over every day; on the tiny stream both cadences gave
   the same alert day, sample, reviews and gate inputs). After each run ``voiceloop alerts``:
   the first alert on ``channel=gsm-noisy8k`` fixes the review week, the ISO week holding its day (with the
   default Monday start and drift on day 15, the week that starts on the alert's day).
6. ``qa``: ``voiceloop qa sample --budget B``, ``qa push``, ``qa simulate-review --truth``, ``qa pull`` and
   ``qa report`` for that week (the sample's alerted share and drifted-slice share against the week's).
7. ``retrain``: ``voiceloop retrain --json`` (the reviewed labels enter its datasets); the gate's verdict with the
   production golden set's criterion and power figures. ``underpowered``: ``voiceloop promote --bundle N --reason``
   by hand, the reason saying it is this benchmark; ``reject``: nothing promoted (the candidate is still measured).
8. ``monitor`` again: the weeks after the review week, heard by the new champion.
9. ``true-wer``: the customer turns of the calls after the review week (never reviewed nor trained on; consented
   calls, whose redacted audio the monitor heard), transcribed from the redacted audio by the champion before the
   pass and by the bundle after it, as the monitor hears (monitoring/champion.py), scored against the truth
   transcripts with PII spans taken out of the truth and placeholders out of the transcripts
   (training/asr/metrics.py). Every drifted-slice call; up to ``--other-calls`` others. Per other slice (channel,
   voice, all others) a paired sign-flip test per turn that the new bundle is worse (training/slice_tests.py),
   Holm-corrected at ``--alpha``; slices under ``gate.min_slice_utterances`` turns are untested.
10. ``recovery`` and ``bar``: the monitor's weekly figures per slice (est. WER, est. intent accuracy, Whisper's
    log-probability), the drifted slice's alerts, and the bar's flags.

    # the demo champion as template (make corpus first), then the loop (1.5-2 h on 2 shared cores: README.md,
    # "The loop in production (QA)")
    .venv/bin/python benchmarks/qa_loop.py --make-template --template T --work W
    # the plumbing on tiny settings (minutes; figures are not the bar): tiny corpus from the tests' cache if given
    .venv/bin/python benchmarks/qa_loop.py --tiny --make-template --template T --work W [--corpus C]

The truth files are read here only (reviewers' answers, scoring): voiceloop itself never reads them.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script: the repository's packages (and benchmarks.common) importable
    sys.path.insert(0, str(REPO))

from benchmarks.common import emit  # noqa: E402

STUDIO_VENV = REPO / ".venv-labelstudio"
STUDIO_START_S = 240.0
FULL = {"days": 35, "calls_per_day": 40, "drift_day": 15, "drift_share": 0.3, "budget": 60.0, "other_calls": 200}
TINY = {"days": 10, "calls_per_day": 4, "drift_day": 4, "drift_share": 0.5, "budget": 16.0, "other_calls": 20}
BAR_RELATIVE = -0.30
MONITORED = ("est_wer", "est_intent_accuracy", "asr_logprob_mean")
_STARTED = time.perf_counter()


# -- plumbing ------------------------------------------------------------------------------------------------------
def say(phase: str, message: str) -> None:
    """Progress on stderr with the elapsed time: a long run is never silent."""
    elapsed = int(time.perf_counter() - _STARTED)
    print(f"[qa_loop {elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}] {phase}: {message}",
          file=sys.stderr, flush=True)


def voiceloop(*args: str, params: Path | None = None, json_out: bool = True) -> Any:
    """Run ``voiceloop ARGS`` as a user would (its own process; its progress on our stderr); its JSON answer."""
    command = [str(Path(sys.executable).with_name("voiceloop")), *args]
    if params is not None:
        command += ["--params", str(params)]
    if json_out:
        command.append("--json")
    began = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"`voiceloop {' '.join(args)}` failed (exit {done.returncode}); its output:\n{done.stdout}")
    shown = " ".join(args)
    say("command", f"voiceloop {shown[:150] + ' ...' if len(shown) > 150 else shown}: "
                   f"{time.perf_counter() - began:.0f} s")
    return json.loads(done.stdout) if json_out else done.stdout


def _phase_timer(timings: dict[str, float], name: str, began: float) -> None:
    timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - began, 1)


# -- 1. the template -----------------------------------------------------------------------------------------------
def make_template(template: Path, corpus: Path | None, tiny: bool) -> None:
    """A trained champion at ``template`` (params.yaml, state/, and for --tiny its sources/): one retrain."""
    params = template / "params.yaml"
    if params.exists() and (template / "state").exists():
        say("template", f"{template} exists: used as it is")
        return
    template.mkdir(parents=True, exist_ok=True)
    if tiny:
        from tests.flow_helpers import TEMPLATE_SECTIONS, flow_params

        sources = template / "sources"
        if corpus is not None:
            shutil.copytree(corpus, sources, dirs_exist_ok=True)
        else:  # the tests' tiny corpus (tests/conftest.py ``tiny_corpus``), through the CLI
            say("template", "simulating the tiny corpus (8 training calls, one golden turn per intent)")
            voiceloop("simulate-calls", "--out", str(sources / "calls"), "--n", "8", "--seed", "1",
                      "--consent-rate", "0.75", json_out=False)
            voiceloop("simulate-calls", "--out", str(sources / "golden"), "--n", "0", "--split", "golden",
                      "--per-intent", "1", "--seed", "2", "--consent-rate", "1.0", json_out=False)
        flow_params(template, sources, **TEMPLATE_SECTIONS)
    else:
        corpus = (corpus or REPO / "data").resolve()
        if not (corpus / "calls").is_dir() or not (corpus / "golden").is_dir():
            raise SystemExit(f"{corpus} has no calls/ and golden/: run `make corpus` (or give --corpus)")
        settings = yaml.safe_load((REPO / "params.yaml").read_text())
        settings["project_dir"] = str(template.resolve() / "state")
        settings["sources"] = {**settings.get("sources", {}), "call_store": str(corpus / "calls"),
                               "golden_store": str(corpus / "golden")}
        params.write_text(yaml.safe_dump(settings))
    say("template", f"training the champion: voiceloop retrain ({'tiny' if tiny else 'demo'} settings)")
    summary = voiceloop("retrain", params=params)
    gate = summary["gate"]
    emit(benchmark="qa_loop", figure="template", template=str(template), tiny=tiny, verdict=gate["verdict"],
         promoted=gate["promoted"], bundle=gate["bundle_version"],
         golden_accuracy=summary["training"]["golden_accuracy"],
         golden_wer=(summary.get("asr") or {}).get("golden_wer"), seconds=summary["timings_s"])
    if not gate["promoted"]:
        raise SystemExit(f"the template's first bundle was not promoted ({gate['verdict']}): no champion to start from")


# -- 2. the project ------------------------------------------------------------------------------------------------
def copy_project(template: Path, project: Path, calls: Path, reference_days: int) -> Path:
    """The template copied (params, MLflow re-pointed) with its DVC cache and remote re-pointed too."""
    from benchmarks.monitor_scenarios import _copy_project

    params = _copy_project(template.resolve(), project.resolve(), calls.resolve(), {"reference_days": reference_days})
    for config in project.rglob(".dvc/config"):
        config.write_text(config.read_text().replace(str(template.resolve()), str(project.resolve())))
        shutil.rmtree(config.parent / "tmp", ignore_errors=True)
    return params


def set_params(params: Path, section: str, values: dict[str, Any]) -> None:
    settings = yaml.safe_load(params.read_text())
    settings[section] = {**settings.get(section, {}), **values}
    params.write_text(yaml.safe_dump(settings))


def load(params: Path) -> Any:
    from core.settings import load_settings

    return load_settings(params)


# -- 3. the stream -------------------------------------------------------------------------------------------------
def simulate(stream: Path, args: argparse.Namespace, drift: str, cache: Path) -> dict[str, dict[str, Any]]:
    """The whole production stream (it does not depend on the models: no bot logs), and its truth by call id."""
    from benchmarks.monitor_scenarios import _truth

    wanted = {"days": args.days, "calls_per_day": args.calls_per_day, "start": args.start, "seed": args.seed,
              "drift": [drift], "bot_log": False}
    record = stream / "truth" / "stream.json"
    if record.exists():
        made = json.loads(record.read_text())["arguments"]
        if all(made.get(k) == v for k, v in wanted.items()):
            say("stream", f"{stream} holds this stream already: reused")
            return _truth(stream.parent, stream.name)
        shutil.rmtree(stream)
    say("stream", f"simulating {args.days} days x {args.calls_per_day} calls, drift {drift} (render cache {cache})")
    voiceloop("simulate-calls", "--production", "--no-bot-log", "--days", str(args.days), "--calls-per-day",
              str(args.calls_per_day), "--start", args.start, "--seed", str(args.seed), "--drift", drift,
              "--truth", str(stream / "truth"), "--out", str(stream / "calls"), "--cache", str(cache), json_out=False)
    return _truth(stream.parent, stream.name)


def batches(truth: dict[str, dict[str, Any]], cadence: str) -> list[tuple[str, list[str]]]:
    """(label, call ids) in time order: one per ISO week, or per day."""
    from qa.weeks import week_of

    groups: dict[str, list[str]] = defaultdict(list)
    for call_id, t in truth.items():
        day = date.fromisoformat(t["date"])
        groups[week_of(day) if cadence == "week" else day.isoformat()].append(call_id)
    return sorted((label, sorted(ids)) for label, ids in groups.items())


def deliver(stream: Path, calls: Path, call_ids: list[str]) -> None:
    """The calls arrive in the project's call store (document and audio), as the platform's export would."""
    (calls / "audio").mkdir(parents=True, exist_ok=True)
    for call_id in call_ids:
        shutil.copy(stream / "calls" / f"{call_id}.json", calls)
        shutil.copy(stream / "calls" / "audio" / f"{call_id}.wav", calls / "audio")


# -- 4. Label Studio -----------------------------------------------------------------------------------------------
def start_studio(work: Path, media_root: Path) -> Any:
    from qa.studio import LocalLabelStudio
    from tests.alerting_helpers import free_port

    if not (STUDIO_VENV / "bin" / "label-studio").exists():
        raise SystemExit(f"{STUDIO_VENV} is missing: `make studio-venv` makes it")
    return LocalLabelStudio(work / "label-studio", free_port(), STUDIO_VENV, media_root)


# -- 5/8. monitoring -----------------------------------------------------------------------------------------------
def drifted_alerts(params: Path, slice_name: str) -> list[dict[str, Any]]:
    rows = voiceloop("alerts", params=params)
    return sorted((r for r in rows if r["slice"] == slice_name), key=lambda r: (r["day"], r["rule"]))


def monitor_weeks(params: Path, truth: dict[str, dict[str, Any]], slices: list[str]) -> list[dict[str, Any]]:
    """The monitor's figures per ISO week and slice: n-weighted means of its daily values."""
    from core.settings import load_settings
    from governance.session import open_store
    from monitoring.watch import load_figures
    from qa.weeks import week_of

    days = {date.fromisoformat(t["date"]) for t in truth.values()}
    store = open_store(load_settings(params), "pipeline", "monitoring")
    sums: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for f in load_figures(store):
        if f.day in days and f.slice in slices and f.metric in MONITORED and f.n:
            key = (week_of(f.day), f.slice, f.metric)
            sums[key][0] += f.value * f.n
            sums[key][1] += f.n
    return [{"week": w, "slice": s, "metric": m, "value": round(v / n, 4), "n": int(n)}
            for (w, s, m), (v, n) in sorted(sums.items())]


# -- 6. QA ---------------------------------------------------------------------------------------------------------
def qa_week(params: Path, week: str, budget: float, truth: dict[str, dict[str, Any]], stream: Path, seed: int,
            drifted: str, channel: str) -> dict[str, Any]:
    from core.settings import load_settings
    from governance.session import open_store
    from qa.labels_zone import SAMPLE_KIND
    from qa.weeks import week_of

    role = ("--as", "ml-engineer")
    sampled = voiceloop("qa", "sample", "--week", week, "--budget", f"{budget:g}", *role, params=params)
    store = open_store(load_settings(params), "ml-engineer", "labelling")
    chosen = store.read_labels(SAMPLE_KIND, [week])[week]["call_ids"]
    in_week = [c for c, t in truth.items() if week_of(date.fromisoformat(t["date"])) == week and t["consent"]]
    drifted_in_week = sum(truth[c]["channel"] == channel for c in in_week)
    drifted_sampled = sum(truth[c]["channel"] == channel for c in chosen)
    emit(benchmark="qa_loop", figure="sample", week=week, budget=budget, frame=sampled["frame"],
         selected=sampled["selected"], expected=sampled["expected_size"], blind=sampled["blind"],
         double=sampled["double"], alerted=sampled["alerted"], alerted_slices=sampled["alerted_slices"],
         alerted_share=round(sampled["alerted"] / max(sampled["selected"], 1), 3), drifted_slice=drifted,
         drifted_sampled=drifted_sampled, drifted_share_of_sample=round(drifted_sampled / max(len(chosen), 1), 3),
         drifted_share_of_week=round(drifted_in_week / max(len(in_week), 1), 3), consented_calls_in_week=len(in_week))
    pushed = voiceloop("qa", "push", "--week", week, *role, params=params)
    answered = voiceloop("qa", "simulate-review", "--truth", str(stream / "truth"), "--week", week, "--seed",
                         str(seed), *role, params=params)
    pulled = voiceloop("qa", "pull", "--week", week, *role, params=params)
    report = voiceloop("qa", "report", "--week", week, *role, params=params)
    rows = {}
    for table in report["metrics"]:
        for row in table["rows"]:
            if row["slice"] in ("all", drifted):
                e = row["estimate"]
                rows[f"{table['metric']}[{row['slice']}]"] = {
                    "estimate": _round(e["value"]), "low": _round(e["low"]), "high": _round(e["high"]),
                    "reviewed": row["reviewed"], "sampled": row["sampled"],
                    "monitor": _round((row.get("monitor") or {}).get("value")), "covered": row.get("covered")}
    emit(benchmark="qa_loop", figure="reviewed", week=week, pushed=pushed["pushed"], no_audio=len(pushed["no_audio"]),
         answers=answered["answered"], adjudicated=answered["adjudicated"], labelled=pulled["labelled"],
         waiting=pulled["waiting"], quarantined=len(pulled["quarantined"]), pii_flagged=len(pulled["pii_flagged"]),
         report_sampled=report["sampled"], report_reviewed=report["reviewed"], blind_reviewed=report["blind_reviewed"],
         agreement=report["agreement"], figures=rows)
    return {"sampled": sampled, "pulled": pulled}


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


# -- 7. retrain, gate, promotion -----------------------------------------------------------------------------------
def retrain_and_promote(params: Path, week: str) -> dict[str, Any]:
    summary = voiceloop("retrain", params=params)
    gate = summary["gate"]
    production = next((c for c in gate["criteria"] if c["name"] == "production_intent_accuracy"), None)
    datasets = {name: {"rows": d["rows"], "calls": d["calls"]} for name, d in summary["datasets"].items()}
    emit(benchmark="qa_loop", figure="gate", bundle=gate["bundle_version"], champion=gate["champion"],
         verdict=gate["verdict"], promoted=gate["promoted"], reasons=gate["reasons"],
         criteria={c["name"]: {"status": c["status"], "decides": c["decides"]} for c in gate["criteria"]},
         production_criterion=None if production is None else {
             "status": production["status"], "challenger": production["challenger"],
             "champion": production["champion"], "interval": production["interval"], "power": production["power"],
             "rule": production["rule"]},
         slices_worse=gate["slices"]["worse"], datasets=datasets,
         golden_accuracy=summary["training"]["golden_accuracy"],
         golden_wer=(summary.get("asr") or {}).get("golden_wer"), retrain_seconds=summary["timings_s"])
    promoted, how = gate["promoted"], "gate" if gate["promoted"] else None
    if gate["verdict"] == "underpowered":
        weak = "; ".join(f"{c['name']} n {c['power']['n']} < {c['power']['n_needed']} needed" for c in gate["criteria"]
                         if c["decides"] and c["status"] == "underpowered" and c.get("power"))
        reason = (f"benchmarks/qa_loop.py, the issue 19 benchmark, not a production decision: the gate was "
                  f"underpowered ({weak}) after the QA review of {week}; promoted by hand to measure the loop")
        voiceloop("promote", "--bundle", gate["bundle_version"], "--reason", reason, "--as", "admin", params=params)
        promoted, how = True, "by hand"
    status = voiceloop("status", params=params)
    champion = (status.get("champion") or {}).get("version")
    emit(benchmark="qa_loop", figure="promotion", bundle=gate["bundle_version"], promoted=promoted, how=how,
         champion_now=champion)
    return {"bundle": gate["bundle_version"], "promoted": promoted, "how": how, "verdict": gate["verdict"]}


# -- 9. true WER ---------------------------------------------------------------------------------------------------
def spoken_without_pii(turn: dict[str, Any]) -> str:
    """What the caller said, with the truth's PII spans taken out (the redacted audio silenced them)."""
    from core.redacted_text import without_placeholders
    from qa.simulated_reviewer import heard_text

    return without_placeholders(heard_text(turn))


def turns_to_hear(params: Path, truth: dict[str, dict[str, Any]], call_ids: list[str],
                  ) -> tuple[list[Any], list[str], list[str]]:
    """The customer turns of ``call_ids`` from their redacted audio (as the monitor hears them), the truth, and the
    calls left out for having no redacted audio (the monitor kept a record without it: nothing to hear)."""
    from core.audio import decode_16k
    from core.settings import load_settings
    from governance.session import open_store
    from monitoring.champion import turn_audio

    store = open_store(load_settings(params), "pipeline", "monitoring")
    present = store.redacted_call_ids()
    turns, references, silent = [], [], []
    for document in store.read_redacted([c for c in call_ids if c in present]):
        try:
            samples = decode_16k(io.BytesIO(store.read_redacted_audio(document["call_id"])))
        except FileNotFoundError:
            silent.append(document["call_id"])
            continue
        said = {t["turn"]: t for t in truth[document["call_id"]]["turns"] if t["speaker"] == "customer"}
        for turn in turn_audio(document, samples):
            if turn.index in said:
                turns.append(turn)
                references.append(spoken_without_pii(said[turn.index]))
    return turns, references, silent


def hear_with(params: Path, version: str, turns: list[Any]) -> list[str]:
    """Bundle ``version``'s transcripts of ``turns`` (redacted, placeholders out), through the monitor's path."""
    from core.redacted_text import without_placeholders
    from core.settings import load_settings
    from governance.redaction.redactor import Redactor
    from monitoring.champion import Champion, hear_with_text
    from training.bundle import load_bundle
    from training.registry import Registry

    settings = load_settings(params)
    registry = Registry(settings)
    bundle = load_bundle(registry, registry.bundle(version), settings.root / "work", settings.asr.window_s)
    champion = Champion(bundle, Redactor(settings.redaction, entities=settings.redaction.entities))
    step = max(len(turns) // 10, 1)

    def tell(done: int, total: int) -> None:
        if done % step < settings.monitor.asr_batch or done == total:
            say("true-wer", f"bundle v{version}: {done}/{total} turns")

    heard = hear_with_text(champion, turns, settings.monitor.asr_batch, tell)
    return [without_placeholders(heard[(t.call_id, t.index)][1]) for t in turns]


def true_wer(params: Path, truth: dict[str, dict[str, Any]], after_day: date, before: str, after: str,
             channel: str, drifted: str, other_calls: int, alpha: float, seed: int, promoted: bool) -> dict[str, Any]:
    import numpy as np

    from training.asr.metrics import error_arrays, utterance_errors
    from training.gate import paired_bootstrap_wer
    from training.slice_tests import SliceTest, judge, sign_flip_worse

    settings = load(params)
    later = sorted(c for c, t in truth.items() if date.fromisoformat(t["date"]) > after_day and t["consent"])
    noisy = [c for c in later if truth[c]["channel"] == channel]
    rest = [c for c in later if truth[c]["channel"] != channel]
    rng = np.random.default_rng(seed)
    others = sorted(rng.choice(rest, size=min(other_calls, len(rest)), replace=False).tolist()) if rest else []
    turns, references, silent = turns_to_hear(params, truth, noisy + others)
    if silent:
        say("true-wer", f"{len(silent)} calls left out: no redacted audio ({', '.join(silent[:5])} ...)")
    say("true-wer", f"{len(turns)} customer turns of {len(noisy)} drifted and {len(others)} other calls after "
                    f"{after_day}; bundles v{before} (before) and v{after} (after)")
    errors = {}
    for name, version in (("before", before), ("after", after)):
        errors[name] = error_arrays(utterance_errors(references, hear_with(params, version, turns)))
    (e0, r), (e1, _) = errors["before"], errors["after"]
    calls = {t.call_id for t in turns}
    drifted_mask = np.array([truth[t.call_id]["channel"] == channel for t in turns])
    masks = {drifted: drifted_mask, "others": ~drifted_mask}
    for key in ("channel", "voice"):
        for value in sorted({truth[c][key] for c in calls if truth[c]["channel"] != channel}):
            masks[f"{key}={value}"] = ~drifted_mask & np.array([truth[t.call_id][key] == value for t in turns])

    def wer(e: Any, mask: Any) -> float | None:
        return float(e[mask].sum() / r[mask].sum()) if r[mask].sum() else None

    rows = {name: {"turns": int(mask.sum()), "ref_words": int(r[mask].sum()), "before": _round(wer(e0, mask)),
                   "after": _round(wer(e1, mask))} for name, mask in masks.items()}
    for row in rows.values():
        row["relative_change"] = (_round((row["after"] - row["before"]) / row["before"]) if row["before"] else None)
    n_resamples, confidence = settings.gate.n_bootstrap, settings.gate.confidence
    change = None
    if drifted_mask.any() and r[drifted_mask].sum():
        delta, low, high = paired_bootstrap_wer(e0[drifted_mask], e1[drifted_mask], r[drifted_mask], n_resamples,
                                                confidence, seed)
        base = rows[drifted]["before"] or 1.0
        change = {"absolute": _round(delta), "interval": [_round(low), _round(high)], "relative": _round(delta / base),
                  "relative_interval": [_round(low / base), _round(high / base)], "confidence": confidence}
    minimum = settings.gate.min_slice_utterances
    tests = [SliceTest(name, int(mask.sum()), rows[name]["after"] or 0.0, rows[name]["before"] or 0.0,
                       sign_flip_worse(e1[mask] - e0[mask], n_resamples, seed) if mask.sum() >= minimum else None)
             for name, mask in masks.items() if name != drifted]
    judged = judge(tests, alpha)
    emit(benchmark="qa_loop", figure="true_wer", after_day=after_day.isoformat(), bundle_before=before,
         bundle_after=after, after_promoted=promoted, calls={"drifted": len(noisy), "others": len(others),
                                                             "others_available": len(rest),
                                                             "without_redacted_audio": silent}, slices=rows)
    emit(benchmark="qa_loop", figure="drifted_slice_change", slice=drifted, **(change or {}))
    emit(benchmark="qa_loop", figure="other_slices_tests", alpha=alpha, test="paired sign-flip per turn, Holm",
         min_turns=minimum, tests=[{"slice": t.name, "turns": t.n, "before": _round(t.champion),
                                    "after": _round(t.challenger), "p_value": _round(t.p_value), "status": t.status,
                                    "threshold": _round(t.threshold)} for t in judged])
    return {"rows": rows, "change": change, "tests": judged}


# -- the loop ------------------------------------------------------------------------------------------------------
def run_loop(args: argparse.Namespace) -> None:
    from voiceloop.simulate.drift import NOISY_CHANNEL

    timings: dict[str, float] = {}
    work: Path = args.work.resolve()
    channel, drifted = NOISY_CHANNEL, f"channel={NOISY_CHANNEL}"
    drift = f"noisy-channel@{args.drift_day}:{args.drift_share:g}"
    began = time.perf_counter()
    project, calls, stream = work / "project", work / "calls", work / "stream"
    for stale in (calls, work / "label-studio"):  # a run starts from an empty call store and a new Label Studio
        shutil.rmtree(stale, ignore_errors=True)
    (calls / "audio").mkdir(parents=True)
    reference_days = max(3, min(14, args.drift_day - 1))
    say("copy", f"{args.template} -> {project} (monitor reference: {reference_days} days)")
    params = copy_project(args.template, project, calls, reference_days)
    _phase_timer(timings, "copy", began)

    began = time.perf_counter()
    truth = simulate(stream, args, drift, (args.cache or work / "render-cache").resolve())
    _phase_timer(timings, "stream", began)
    emit(benchmark="qa_loop", figure="stream", calls=len(truth), drift=drift, start=args.start, days=args.days,
         drifted_calls=sum(t["channel"] == channel for t in truth.values()), seconds=timings["stream"])

    champion_before = (voiceloop("status", params=params).get("champion") or {}).get("version")
    say("studio", "starting Label Studio")
    studio = start_studio(work, project)
    try:
        began = time.perf_counter()
        status = studio.start(STUDIO_START_S)
        set_params(params, "qa", {"label_studio_url": status.connection.url,
                                  "label_studio_token": status.connection.token,
                                  "label_studio_files_root": str(studio.media_root),
                                  "project_title": f"voiceloop QA benchmark {work.name}"})
        _phase_timer(timings, "studio", began)
        say("studio", f"running at {status.connection.url} ({timings['studio']:.0f} s)")
        loop(args, params, truth, stream, calls, channel, drifted, champion_before, timings)
    finally:
        studio.stop()
        say("studio", "stopped")


def loop(args: argparse.Namespace, params: Path, truth: dict[str, dict[str, Any]], stream: Path, calls: Path,
         channel: str, drifted: str, champion_before: str | None, timings: dict[str, float]) -> None:
    from qa.weeks import parse_week, week_of

    first = date.fromisoformat(args.start)
    onset = first + timedelta(days=args.drift_day - 1)
    alert: dict[str, Any] | None = None
    review_week: str | None = None
    outcome: dict[str, Any] | None = None
    monitor_runs = []
    for label, call_ids in batches(truth, args.cadence):
        began = time.perf_counter()
        deliver(stream, calls, call_ids)
        say("monitor", f"{label}: {len(call_ids)} calls in; voiceloop monitor (champion "
                       f"v{champion_before if outcome is None or not outcome['promoted'] else outcome['bundle']})")
        summary = voiceloop("monitor", params=params)
        _phase_timer(timings, "monitor", began)
        monitor_runs.append({"batch": label, "calls": len(call_ids), "seconds": round(time.perf_counter() - began, 1),
                             "champion_turns": summary["collect"]["champion_turns"], "timings": summary["timings_s"]})
        last_day = max(date.fromisoformat(truth[c]["date"]) for c in call_ids)
        if alert is None:
            seen = drifted_alerts(params, drifted)
            if seen:
                alert = seen[0]
                review_week = week_of(date.fromisoformat(alert["day"]))
                emit(benchmark="qa_loop", figure="alert", slice=drifted, day=alert["day"], rule=alert["rule"],
                     onset=onset.isoformat(), days_after_onset=(date.fromisoformat(alert["day"]) - onset).days,
                     review_week=review_week, alerts=[(a["day"], a["rule"]) for a in seen])
            elif last_day >= onset + timedelta(days=6):  # a week of drift and no alert: review the drift's week anyway
                review_week = week_of(onset)
                alert = {"day": None}
                emit(benchmark="qa_loop", figure="alert", slice=drifted, day=None, onset=onset.isoformat(),
                     review_week=review_week, note="no alert on the drifted slice a week after onset: the drift's "
                                                   "week is reviewed without the alerted slice's uplift")
        if review_week is not None and outcome is None and last_day >= parse_week(review_week)[1]:
            began = time.perf_counter()
            say("qa", f"the review of {review_week} (budget {args.budget:g})")
            qa_week(params, review_week, args.budget, truth, stream, args.seed, drifted, channel)
            _phase_timer(timings, "qa", began)
            began = time.perf_counter()
            say("retrain", "voiceloop retrain with the reviewed labels (the long phase: its steps follow)")
            outcome = retrain_and_promote(params, review_week)
            _phase_timer(timings, "retrain", began)
    emit(benchmark="qa_loop", figure="monitor_runs", cadence=args.cadence, runs=monitor_runs,
         seconds=timings.get("monitor"))
    if outcome is None or review_week is None:
        emit(benchmark="qa_loop", figure="bar", bar_met=False, reason="the loop never reached its review week")
        return
    after_pass(args, params, truth, channel, drifted, champion_before, outcome, review_week, timings)


def after_pass(args: argparse.Namespace, params: Path, truth: dict[str, dict[str, Any]], channel: str, drifted: str,
               champion_before: str | None, outcome: dict[str, Any], review_week: str,
               timings: dict[str, float]) -> None:
    """Phases 9-10: the true WER before and after the pass, the monitor's recovery, the bar."""
    from qa.weeks import parse_week

    review_end = parse_week(review_week)[1]
    if review_end >= max(date.fromisoformat(t["date"]) for t in truth.values()):
        raise SystemExit(f"no calls after the review week {review_week}: lengthen --days")

    began = time.perf_counter()
    after = outcome["bundle"]
    result = true_wer(params, truth, review_end, str(champion_before), after, channel, drifted, args.other_calls,
                      args.alpha, args.seed, outcome["promoted"])
    _phase_timer(timings, "true_wer", began)

    began = time.perf_counter()
    other_channels = sorted({f"channel={t['channel']}" for t in truth.values()} - {drifted})
    weekly = monitor_weeks(params, truth, ["all", drifted, *other_channels])
    for row in weekly:
        emit(benchmark="qa_loop", figure="monitor_week", **row)
    seen = drifted_alerts(params, drifted)
    emit(benchmark="qa_loop", figure="drifted_slice_alerts", alerts=[
        {"rule": a["rule"], "day": a["day"], "last_day": a["last_day"], "value": _round(a.get("value"))} for a in seen],
        open_after_pass=[a["rule"] for a in seen if a["last_day"] > review_end.isoformat()])
    est, logprob = ({r["week"]: r["value"] for r in weekly if r["slice"] == drifted and r["metric"] == metric}
                    for metric in ("est_wer", "asr_logprob_mean"))
    later = [v for w, v in sorted(est.items()) if w > review_week]
    emit(benchmark="qa_loop", figure="monitor_recovery", slice=drifted, review_week=review_week,
         est_wer_review_week=est.get(review_week), est_wer_after=later,
         asr_logprob_review_week=logprob.get(review_week),
         asr_logprob_after=[v for w, v in sorted(logprob.items()) if w > review_week],
         true_wer_before=result["rows"][drifted]["before"], true_wer_after=result["rows"][drifted]["after"],
         recovered=bool(later) and est.get(review_week) is not None and max(later) < est[review_week])
    _phase_timer(timings, "recovery", began)

    relative = (result["change"] or {}).get("relative")
    worse = [t.name for t in result["tests"] if t.status == "worse"]
    untested = [t.name for t in result["tests"] if t.status == "untested"]
    falls = relative is not None and relative <= BAR_RELATIVE
    emit(benchmark="qa_loop", figure="bar", tiny=args.tiny, budget=args.budget, drifted_relative_change=relative,
         drifted_falls_30_percent=falls, other_slices_worse=worse, other_slices_untested=untested,
         promoted=outcome["promoted"], promoted_how=outcome["how"], gate_verdict=outcome["verdict"],
         bar_met=falls and not worse and outcome["promoted"],
         note="tiny: a plumbing check, its figures are not the bar" if args.tiny else None)
    emit(benchmark="qa_loop", figure="seconds", phases=timings, total=round(time.perf_counter() - _STARTED, 1))


def resume_after_pass(args: argparse.Namespace) -> None:
    """Phases 9-10 again on the project and stream an earlier run left in ``--work`` (e.g. after a crash there)."""
    from voiceloop.simulate.drift import NOISY_CHANNEL

    work: Path = args.work.resolve()
    week, before, after = args.resume_after_pass
    drift = f"noisy-channel@{args.drift_day}:{args.drift_share:g}"
    truth = simulate(work / "stream", args, drift, (args.cache or work / "render-cache").resolve())
    outcome = {"bundle": after, "promoted": True, "how": "see the earlier run's promotion figure",
               "verdict": "see the earlier run's gate figure"}
    say("resume", f"phases 9-10 for review week {week}: bundle v{before} before, v{after} after")
    after_pass(args, work / "project" / "params.yaml", truth, NOISY_CHANNEL, f"channel={NOISY_CHANNEL}", before,
               outcome, week, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", type=Path, required=True, help="a trained project: params.yaml + its state")
    parser.add_argument("--work", type=Path, required=True, help="scratch folder: project copy, stream, Label Studio")
    parser.add_argument("--make-template", action="store_true", help="build --template first when it is missing")
    parser.add_argument("--corpus", type=Path, help="--make-template: calls/ + golden/ (default: data for the demo; "
                                                    "--tiny: simulated, or e.g. $VOICELOOP_TEST_CACHE/corpus)")
    parser.add_argument("--days", type=int)
    parser.add_argument("--calls-per-day", type=int)
    parser.add_argument("--drift-day", type=int)
    parser.add_argument("--drift-share", type=float)
    parser.add_argument("--budget", type=float, help="QA budget: expected calls reviewed in the week")
    parser.add_argument("--other-calls", type=int, help="other-slice calls transcribed for the true WER")
    parser.add_argument("--start", default="2026-11-02", help="the stream's first day (a Monday: weeks align)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cadence", choices=("week", "day"), default="week", help="how often the monitor runs")
    parser.add_argument("--alpha", type=float, default=0.05, help="family-wise alpha of the other slices' tests")
    parser.add_argument("--cache", type=Path, help="render cache (default <work>/render-cache; share it across runs)")
    parser.add_argument("--tiny", action="store_true", help="a minutes-long plumbing check (figures are not the bar)")
    parser.add_argument("--resume-after-pass", nargs=3, metavar=("WEEK", "BEFORE", "AFTER"),
                        help="only phases 9-10 on the project a run left in --work (its monitor runs done): the review "
                             "week, the champion before the pass and the bundle after it (the earlier run's "
                             "`promotion` figure says how it was promoted)")
    args = parser.parse_args()
    for key, value in (TINY if args.tiny else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.drift_day < 4:
        raise SystemExit("--drift-day must be >= 4: the monitor needs at least 3 reference days before it")
    args.work.mkdir(parents=True, exist_ok=True)
    from core.runtime import prepare

    prepare(args.work.resolve() / "tools")  # tool homes (Prefect, caches) for this process and every command it runs
    emit(benchmark="qa_loop", figure="config",
         **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()})
    try:
        if args.resume_after_pass:
            resume_after_pass(args)
            return
        if args.make_template:
            began = time.perf_counter()
            make_template(args.template.resolve(), args.corpus, args.tiny)
            say("template", f"ready ({time.perf_counter() - began:.0f} s)")
        run_loop(args)
    finally:
        conftest = sys.modules.get("tests.conftest")  # imported for the tests' helpers: its session folder is unused
        if conftest is not None:
            shutil.rmtree(conftest._SESSION_HOME, ignore_errors=True)


if __name__ == "__main__":
    main()
