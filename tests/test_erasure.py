"""Right to erasure, end to end, on a project trained by the real flow (real store, DVC, MLflow, audit).

The caller erased here has a call in ``intent-train`` and one in the golden set, and the project was
retrained twice, so the second gate kept the champion's transcripts of the golden audio. Completeness
is checked by searching every file of the project (zones, trash, DVC cache and remote, MLflow
database and artifacts with the model files, audit database, certificates), decrypting every
encrypted file on the way, for the caller's id, a chunk of their audio, their transcript texts, the
champion's transcripts of their golden turns and the words only they said; the same search must find
all of them before the erasure, so a search that finds nothing proves something. A second project
erases a caller after one of their calls was corrected and the other withdrew consent.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from core.settings import Settings
from flows.erase import carry_out_pending_withdrawals
from governance.audit import open_audit
from governance.crypto import Keyring, RawKeyError
from governance.ingest import ingest, ingest_sources
from governance.redaction.calls import redact_pending
from governance.session import open_store
from tests.conftest import REPO
from tests.flow_helpers import TrainedProject, cli, project_fixture, retrained_template
from training.datasets import open_version
from training.registry import BASELINE_PREFIX, RETRAIN_REQUIRED_TAG
from training.versioning import DvcVersioner

project = project_fixture("erasure", template=retrained_template)
changed_project = project_fixture("erasure-changed", "changed_project")
BANKING77 = REPO / "data" / "sample" / "banking77"
# the public vocabularies of the base models (Whisper's tokenizer, MiniLM's word pieces) inside model
# folders: not derived from any call, and they hold most English words, so words are not searched there
PUBLIC_VOCABULARIES = {"tokenizer.json", "vocabulary.json", "vocabulary.txt", "vocab.json", "vocab.txt",
                       "merges.txt"}


def _audio_chunk(audio: bytes) -> bytes:
    """64 bytes from the middle of the recording that are not silence (silence matches anything)."""
    for start in range(len(audio) // 2, len(audio) - 64, 64):
        chunk = audio[start:start + 64]
        if len(set(chunk)) > 32:
            return chunk
    raise AssertionError("no distinctive audio chunk found")


def _needles(project: TrainedProject) -> dict[str, bytes]:
    """The caller's id, audio, customer-turn texts (raw and redacted), the words no one else said, and
    the champion's kept transcripts of their golden turns: what no other call and no public BANKING77
    sentence contains."""
    settings = project.settings
    needles = {"caller id": project.caller_id.encode()}
    train_call, golden_call = project.call_ids
    needles["audio"] = _audio_chunk((project.sources / "calls" / "audio" / f"{train_call}.wav").read_bytes())
    redacted = {p.stem: p.read_text() for p in (settings.zones_dir / "redacted").glob("*.json")}
    sources = {p.stem: p.read_text() for p in project.sources.glob("*/*.json")}
    public = "\n".join(p.read_text() for p in BANKING77.glob("*.csv"))
    others = "\n".join(text for zone in (redacted, sources) for cid, text in zone.items()
                       if cid not in project.call_ids)
    elsewhere = public + others
    words: set[str] = set()
    for call_id in project.call_ids:
        for origin, document in (("raw", json.loads(sources[call_id])), ("redacted", json.loads(redacted[call_id]))):
            texts = [t["text"] for t in document["turns"] if t["speaker"] == "customer"]
            texts += [t.get("transcript") or "" for t in document["turns"]]  # redacted references
            texts += [label.get("transcript") or "" for label in document.get("labels", [])]  # raw references
            for index, text in enumerate(texts):
                if len(text) >= 20 and text.isascii() and '"' not in text and text not in elsewhere:
                    needles[f"{origin} text {call_id}#{index}"] = text.encode()
                words |= set(re.findall(r"[a-z]{6,}", text.lower()))
    lowered = elsewhere.lower()
    needles |= {f"word {word}": word.encode() for word in sorted(words) if word not in lowered}
    for index, text in enumerate(_champion_transcripts(project, golden_call)):
        if len(text) >= 20 and text not in elsewhere:
            needles[f"champion transcript {golden_call}#{index}"] = text.encode()
    return needles


def _champion_transcripts(project: TrainedProject, call_id: str) -> list[str]:
    """What the gate kept of the champion ASR on ``call_id``'s golden turns (beside the golden version)."""
    settings = project.settings
    digest = project.summary["datasets"]["asr-golden"]["digest"]
    rows = open_version(open_store(settings, "ml-engineer", "evaluation"), "asr-golden", digest).load()
    mine = [i for i, c in enumerate(rows["call_id"]) if c == call_id]
    kept = (settings.zones_dir / "datasets" / "asr-golden" / f"{digest}.evaluations").glob("champion-asr-*.json")
    return [json.loads(path.read_text())["texts"][i] for path in kept for i in mine]


def _search(settings: Settings, needles: dict[str, bytes]) -> dict[str, set[str]]:
    """Needle -> project files holding it, in clear or inside an encrypted file (words: outside public
    model vocabularies)."""
    cipher = Keyring(settings.keys_dir).raw
    hits: dict[str, set[str]] = {name: set() for name in needles}
    # a word is found as a word: MLflow's own "num_elements" holds no caller's "element"
    whole = {name: re.compile(rb"(?<![A-Za-z])" + re.escape(needle) + rb"(?![A-Za-z])", re.IGNORECASE)
             for name, needle in needles.items() if name.startswith("word ")}
    for path in settings.root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if path.name.endswith(".enc"):
            with contextlib.suppress(RawKeyError):
                data += cipher.decrypt(data, path.name)
        for name, needle in needles.items():
            if name.startswith("word ") and path.name in PUBLIC_VOCABULARIES:
                continue
            if (whole[name].search(data) if name in whole else needle in data):
                hits[name].add(path.relative_to(settings.root).as_posix())
    return hits


@dataclass
class Erasure:
    certificate: dict[str, Any]
    needles: dict[str, bytes]
    before: dict[str, set[str]]
    datasets_before: dict[str, dict[str, Any]]  # digest -> manifest facts
    monitored_before: dict[str, str]  # monitoring zone file -> its text, before the erasure


def _monitoring_files(settings: Settings) -> dict[str, str]:
    folder = settings.zones_dir / "monitoring"
    return {p.relative_to(folder).as_posix(): p.read_text() for p in folder.rglob("*.json")}


@pytest.fixture(scope="module")
def erasure(project: TrainedProject) -> Erasure:
    settings = project.settings
    watched = cli("monitor", "--json", "--params", str(project.params))  # the caller's calls are watched too
    assert watched.exit_code == 0, watched.output
    needles = _needles(project)
    before = _search(settings, needles)
    store = open_store(settings, "compliance-officer", "audit")
    datasets_before = {d.digest: {"name": d.name, "rows": d.rows, "call_ids": d.call_ids}
                       for d in store.list_datasets()}
    monitored_before = _monitoring_files(settings)
    result = cli("erase", "--caller-id", project.caller_id, "--as", "compliance-officer", "--json",
                 "--params", str(project.params))
    assert result.exit_code == 0, result.output
    return Erasure(json.loads(result.stdout), needles, before, datasets_before, monitored_before)


def test_nothing_of_the_caller_is_left_anywhere_in_the_project(project: TrainedProject, erasure: Erasure) -> None:
    settings = project.settings
    texts = [name for name in erasure.needles if "text" in name]
    assert texts, "the caller's calls should have distinctive transcript texts"
    # positive controls: the search finds every needle before the erasure, in datasets and DVC too
    assert all(erasure.before[name] for name in erasure.needles), erasure.before
    in_dvc = set().union(*(erasure.before[name] for name in texts))
    for where in ("zones/raw/", "zones/redacted/", "zones/datasets/", "dvc-cache/", "dvc-remote/"):
        assert any(path.startswith(where) for path in in_dvc), f"no caller text found under {where} before erasure"
    assert (settings.root / "mlartifacts").is_dir() and (settings.root / "audit.db").is_file()
    # the champion's golden transcripts of the second gate, kept beside the golden version
    kept = [paths for name, paths in erasure.before.items() if name.startswith("champion transcript")]
    assert kept and all(any(".evaluations/champion-asr-" in p for p in paths) for paths in kept), kept
    words = [name for name in erasure.needles if name.startswith("word ")]
    assert words, "the caller should have said words no one else did (their name at least)"
    models = list((settings.root / "mlartifacts").rglob("lexical.json"))
    assert models  # searched: the intent models' vocabularies never held them

    after = _search(settings, erasure.needles)
    assert {name: paths for name, paths in after.items() if paths} == {}


def test_datasets_are_rebuilt_without_the_caller(project: TrainedProject, erasure: Erasure) -> None:
    settings = project.settings
    store = open_store(settings, "compliance-officer", "audit")
    stored = {d.digest: d for d in store.list_datasets()}
    assert not any(set(project.call_ids) & set(d.call_ids) for d in stored.values())
    rebuilt = {d["name"]: d for d in erasure.certificate["datasets"]}
    assert set(rebuilt) == {"intent-train", "intent-golden", "asr-train", "asr-golden"}  # text and audio sets
    for name, entry in rebuilt.items():
        old = erasure.datasets_before[entry["old_digest"]]
        assert entry["old_digest"] not in stored and entry["old_digest_reproduced"]
        new = stored[entry["new_digest"]]
        assert new.name == name and set(new.call_ids) == set(old["call_ids"]) - set(project.call_ids)
        assert entry["rows_after"] == new.rows < old["rows"] == entry["rows_before"]
        manifest = new.manifest
        assert manifest["rebuilt_from"] == entry["old_digest"]
        assert manifest["erasure_request"] == erasure.certificate["request_id"]
    # the DVC stage rebuilds the same versions from the redacted zone the erasure left behind
    result = cli("build-datasets", "--json", "--params", str(project.params))
    assert result.exit_code == 0, result.output
    digests = json.loads(result.stdout)
    assert {name: digests[name] for name in rebuilt} == {name: e["new_digest"] for name, e in rebuilt.items()}
    assert digests["banking77-train"] == project.summary["datasets"]["banking77-train"]["digest"]


def test_dvc_cache_and_remote_lose_the_old_objects_and_keep_the_rest(project: TrainedProject,
                                                                     erasure: Erasure) -> None:
    settings = project.settings
    dvc = erasure.certificate["dvc"]
    assert len(dvc["versions"]) == 4 and dvc["cache"]["objects"] and dvc["remote"]["bytes"] > 0
    assert set(dvc["cache"]["objects"]) == set(dvc["remote"]["objects"])
    assert {f"{v}" for v in dvc["versions"]} <= set(dvc["cache"]["objects"])
    for oid in dvc["cache"]["objects"]:
        for base in (settings.root / "dvc-cache", Path(settings.dvc_remote_url)):
            assert not (base / "files" / "md5" / oid[:2] / oid[2:]).exists()
    versioner = DvcVersioner.of(open_store(settings, "compliance-officer", "erasure"), settings)
    assert versioner.missing_objects() == {"cache": [], "remote": []}  # remaining versions are whole
    assert not set(dvc["cache"]["objects"]) & versioner.referenced_objects()
    assert {p.stem for p in versioner.dvc_files()} >= {d["new_digest"] for d in erasure.certificate["datasets"]}


def test_models_are_tagged_and_the_champion_is_rebaselined(project: TrainedProject, erasure: Erasure) -> None:
    settings = project.settings
    request_id = erasure.certificate["request_id"]
    run_id = project.summary["training"]["run_id"]
    intent = f"{settings.tracking.intent_model_name}/1"
    bundle = f"{settings.tracking.bundle_name}/1"
    asr = f"{settings.tracking.asr_model_name}/1"
    second_bundle = f"{settings.tracking.bundle_name}/{project.summary['gate']['bundle_version']}"
    models = erasure.certificate["models"]
    assert (models["tag"], sorted(models["bundle_versions"])) == (RETRAIN_REQUIRED_TAG, sorted([bundle, second_bundle]))
    [first] = project.earlier  # the intent run was reused by the second retrain; the ASR was trained twice
    asr_runs = {first["asr"]["run_id"], project.summary["asr"]["run_id"]}
    assert set(models["runs"]) == {run_id} | asr_runs  # every run that saw the caller
    assert sorted(models["model_versions"]) == sorted([intent, asr, f"{settings.tracking.asr_model_name}/2"])
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    assert client.get_run(run_id).data.tags[RETRAIN_REQUIRED_TAG] == request_id
    assert client.get_model_version(*intent.split("/")).tags[RETRAIN_REQUIRED_TAG] == request_id
    champion = client.get_model_version_by_alias(settings.tracking.bundle_name, "champion")
    assert champion.tags[RETRAIN_REQUIRED_TAG] == request_id

    golden = erasure.certificate["golden"]
    new_golden = next(d for d in erasure.certificate["datasets"] if d["name"] == "intent-golden")
    assert golden["in_golden_set"] and golden["rebaselined"] and golden["rows"] == new_golden["rows_after"]
    assert champion.tags[BASELINE_PREFIX + "golden_digest"] == new_golden["new_digest"]
    assert float(champion.tags[BASELINE_PREFIX + "golden_accuracy"]) == pytest.approx(golden["accuracy"], abs=1e-6)
    [entry] = open_audit(settings).entries(action="erasure.rebaseline")
    assert entry.detail["request_id"] == request_id and entry.detail["new_digest"] == new_golden["new_digest"]


def test_mlflow_artifacts_hold_no_call_text(project: TrainedProject, erasure: Erasure) -> None:
    """Decision JSON, plots, bundle JSON and the model folder: none holds any call's text (only intents)."""
    settings = project.settings
    sources = [json.loads(p.read_text()) for p in project.sources.glob("*/*.json")]
    texts = {t["text"] for doc in sources for t in doc["turns"] if len(t["text"]) >= 20}
    callers = {doc["caller_id"] for doc in sources}
    blobs = [p.read_bytes() for p in (settings.root / "mlartifacts").rglob("*") if p.is_file()]
    assert blobs
    assert not [t for t in texts | callers if any(t.encode() in blob for blob in blobs)]


def test_the_certificate_verifies_and_a_tampered_one_does_not(project: TrainedProject, erasure: Erasure,
                                                              tmp_path: Path) -> None:
    settings = project.settings
    certificate = dict(erasure.certificate)
    path = Path(certificate.pop("certificate_file"))
    assert path == settings.root / "erasure-certificates" / f"{certificate['request_id']}.json"
    assert json.loads(path.read_text()) == certificate
    assert certificate["caller"] == open_audit(settings).pseudonym(project.caller_id)
    assert project.caller_id not in path.read_text()
    assert sorted(certificate["call_ids"]) == sorted(project.call_ids)
    assert certificate["zones"]["raw"]["files"] == 6 and certificate["by"]["role"] == "compliance-officer"

    ok = cli("erase", "--verify-certificate", str(path), "--params", str(project.params))
    assert ok.exit_code == 0 and "valid" in ok.output
    for field, value in (("call_ids", certificate["call_ids"][:1]), ("completed_at", "2020-01-01T00:00:00+00:00")):
        forged = tmp_path / f"forged-{field}.json"
        forged.write_text(json.dumps({**certificate, field: value}))
        bad = cli("erase", "--verify-certificate", str(forged), "--params", str(project.params))
        assert bad.exit_code == 1 and "INVALID" in bad.output
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert cli("erase", "--verify-certificate", str(garbage), "--params", str(project.params)).exit_code == 2
    [completed] = open_audit(settings).entries(action="erasure.completed", caller=project.caller_id)
    assert completed.detail["signature"] == certificate["signature"]["value"]


def test_ingest_never_brings_an_erased_call_back(project: TrainedProject, erasure: Erasure) -> None:
    settings = project.settings
    store = open_store(settings, "pipeline", "ingest")
    for (split, folder), call_id in zip((("train", "calls"), ("golden", "golden")), project.call_ids, strict=True):
        source = project.sources / folder / f"{call_id}.json"
        document = json.loads(source.read_text())
        source.write_text(json.dumps({**document, "outcome": "changed after the erasure"}))  # a changed file
        report = ingest(store, str(project.sources / folder), split)
        assert report.erased == [call_id] and report.ingested == []
        assert call_id not in store.raw_call_ids()
    assert open_audit(settings).verify().ok


def test_erase_list_shows_pending_and_overdue_requests(project: TrainedProject, erasure: Erasure) -> None:
    params = str(project.params)
    late = cli("erase", "--caller-id", "caller-overdue", "--request-only", "--as", "compliance-officer", "--json",
               "--params", params, env={"VOICELOOP__RETENTION__ERASURE_DEADLINE_DAYS": "-3"})
    assert late.exit_code == 0, late.output
    pending = cli("erase", "--caller-id", "-", "--request-only", "--as", "admin", "--json", "--params", params,
                  input="caller-pending\n")  # the id from stdin, out of the shell history
    assert pending.exit_code == 0, pending.output
    late_id, pending_id = json.loads(late.stdout)["request_id"], json.loads(pending.stdout)["request_id"]

    listed = cli("erase", "--list", "--as", "compliance-officer", "--json", "--params", params)
    assert listed.exit_code == 0, listed.output
    status = {r["request_id"]: r["status"] for r in json.loads(listed.stdout)}
    assert status == {late_id: "overdue", pending_id: "pending"}  # the completed request is not open
    table = cli("erase", "--list", "--as", "compliance-officer", "--params", params)
    assert table.exit_code == 0 and "overdue" in table.output and pending_id in table.output

    wrong = cli("erase", "--caller-id", "caller-overdue", "--request-id", pending_id, "--as", "admin",
                "--params", params)
    assert wrong.exit_code == 2 and "not an erasure request of this caller" in wrong.output
    done = cli("erase", "--caller-id", "caller-pending", "--as", "admin", "--json", "--params", params)
    assert done.exit_code == 0, done.output
    finished = json.loads(done.stdout)
    assert finished["request_id"] == pending_id and finished["call_ids"] == []  # nothing held: still certified
    listed = cli("erase", "--list", "--as", "compliance-officer", "--json", "--params", params)
    assert [r["request_id"] for r in json.loads(listed.stdout)] == [late_id]


def test_erase_needs_a_role_holding_the_erasure_purpose(project: TrainedProject, erasure: Erasure) -> None:
    settings = project.settings
    requests = len(list(open_audit(settings).entries(action="erasure.request")))
    refused = cli("erase", "--caller-id", "someone", "--as", "ml-engineer", "--params", str(project.params))
    assert refused.exit_code == 2
    assert "may not act for purpose 'erasure'" in refused.output and "compliance-officer" in refused.output
    assert len(list(open_audit(settings).entries(action="erasure.request"))) == requests
    assert cli("erase", "--params", str(project.params)).exit_code == 2  # no mode given


def test_a_corrected_and_a_withdrawn_call_leave_nothing_of_either_version(changed_project: TrainedProject) -> None:
    """Before the erasure, the caller's training call is corrected (a new version in raw and redacted,
    the old one still in the datasets) and their golden call's document withdraws consent (taken out of
    the datasets, its copies kept); the erasure removes every version of both."""
    settings, project = changed_project.settings, changed_project
    train_call, golden_call = project.call_ids
    needles = _needles(project)  # the calls as first ingested, redacted and trained on
    trained = _search(settings, needles)
    source = project.sources / "calls" / f"{train_call}.json"
    document = json.loads(source.read_text())
    customer = [t for t in document["turns"] if t["speaker"] == "customer"]  # needle "raw text <id>#<i>"
    index = next(i for i in range(len(customer))
                 if any(p.startswith("zones/datasets/") for p in trained.get(f"raw text {train_call}#{i}", ())))
    corrected = "the replacement card never reached the quayside launderette"
    customer[index]["text"] = corrected  # a turn without PII, so its old text lives on in a dataset
    source.write_text(json.dumps(document))
    golden = project.sources / "golden" / f"{golden_call}.json"
    withdrawn = json.loads(golden.read_text())
    golden.write_text(json.dumps({**withdrawn, "consent": {**withdrawn["consent"], "training": False}}))

    reports = ingest_sources(open_store(settings, "pipeline", "ingest"), settings.sources)
    assert reports["golden"].withdrawn == [golden_call]
    [withdrawal] = carry_out_pending_withdrawals(settings, open_store(settings, "pipeline", "withdrawal"))
    assert withdrawal.certificate["call_ids"] == [golden_call]
    redone = redact_pending(open_store(settings, "pipeline", "redaction"), settings.redaction).calls
    assert sorted(redone) == sorted(project.call_ids)  # both documents changed (a turn, the consent)
    needles["corrected text"] = corrected.encode()
    needles["corrected word"] = b"launderette"
    before = _search(settings, needles)
    # the champion's transcripts of the golden call were kept beside the golden version the withdrawal replaced:
    # they went with it (the rebuilt version's are made without the call)
    transcripts = [name for name in needles if name.startswith("champion transcript")]
    assert transcripts and all(trained[name] and not before[name] for name in transcripts)
    assert all(paths for name, paths in before.items() if name not in transcripts), \
        {name: paths for name, paths in before.items() if not paths and name not in transcripts}
    old_text = before[f"raw text {train_call}#{index}"]
    assert not any(p.startswith(("zones/raw/", "zones/redacted/")) for p in old_text)  # replaced there,
    assert any(p.startswith("zones/datasets/") for p in old_text)  # still in what was trained on

    erased = cli("erase", "--caller-id", project.caller_id, "--as", "compliance-officer", "--json",
                 "--params", str(project.params))
    assert erased.exit_code == 0, erased.output
    assert sorted(json.loads(erased.stdout)["call_ids"]) == sorted(project.call_ids)
    after = _search(settings, needles)
    assert {name: paths for name, paths in after.items() if paths} == {}


def test_the_callers_monitoring_records_and_the_calibration_on_their_golden_call_are_gone(
        project: TrainedProject, erasure: Erasure) -> None:
    """The monitor watched the caller's training call (a per-call record with their pseudonym) and calibrated
    the champion on the golden set that holds their golden call; the erasure leaves neither."""
    settings = project.settings
    train_call, golden_call = project.call_ids
    caller_ref = open_store(settings, "compliance-officer", "audit").caller_ref(project.caller_id)
    before = erasure.monitored_before
    assert f"calls/{train_call}.json" in before and caller_ref in before[f"calls/{train_call}.json"]
    assert any(name.startswith("calibration/") and golden_call in text for name, text in before.items())
    after = _monitoring_files(settings)
    assert not [name for name, text in after.items() if caller_ref in text or train_call in text
                or golden_call in text]
    assert not [name for name in after if name.startswith("calibration/")], "refitted on the next run"
    assert set(erasure.certificate["zones"]["monitoring"]["call_ids"]) == {train_call, golden_call}
