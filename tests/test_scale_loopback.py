"""The loop on the topology a team runs, all on loopback, so erasure is proven where production keeps the data.

One retrain of the tiny corpus (ASR off) with the governed store and the DVC remote in versioned S3 buckets
(a moto server), MLflow as a tracking server (``mlflow server``: runs and registry in PostgreSQL, artifacts
proxied to a versioned bucket) and redaction shards on a local Dask cluster of two single-thread worker
processes. The gate promotes the first challenger (the champion alias is read back from the server); one
caller is then erased. Every object version of the three buckets (decrypted where encrypted) and every row
of every table of MLflow's database are searched for the caller's id, pseudonym, call id, a slice of their
raw audio and their words: the same search finds them in the store's bucket and in the DVC remote before
the erasure, and nothing after.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.settings import Settings, load_settings
from governance.crypto import Keyring, RawKeyError
from governance.session import open_store
from tests.conftest import REPO
from tests.flow_helpers import flow_params
from tests.mlflow_server import MlflowServer

if TYPE_CHECKING:
    from tests.s3_server import S3

BANKING77 = REPO / "data" / "sample" / "banking77"
# the base models' public vocabularies inside model folders hold most English words: words are not searched there
PUBLIC_VOCABULARIES = {"tokenizer.json", "vocabulary.json", "vocabulary.txt", "vocab.json", "vocab.txt",
                       "merges.txt"}
STATE = "/state/"  # the store's state files: tombstones and erasure journals name erased calls by design
Found = dict[str, set[str]]  # needle -> where it was found


def _caller(sources: Path) -> dict[str, Any]:
    """The first consenting training call with an intent label: it reaches ``intent-train``."""
    for path in sorted((sources / "calls").glob("*.json")):
        document = json.loads(path.read_text())
        if document["consent"]["training"] and any(label.get("intent") for label in document["labels"]):
            return dict(document)
    raise AssertionError("the tiny corpus has no consenting labelled training call")


def _audio_slice(audio: bytes) -> bytes:
    """64 bytes from the middle of the recording that are not silence (silence matches anything)."""
    for start in range(len(audio) // 2, len(audio) - 64, 64):
        if len(set(audio[start:start + 64])) > 32:
            return audio[start:start + 64]
    raise AssertionError("no distinctive audio slice")


def _needles(settings: Settings, sources: Path, caller: dict[str, Any]) -> dict[str, bytes]:
    """The caller's id, pseudonym, call id, raw audio slice, and texts and words that no other call and no
    public BANKING77 sentence holds (customer turns as said and as redacted)."""
    call_id = caller["call_id"]
    store = open_store(settings, "pipeline", "training")
    needles = {"caller id": caller["caller_id"].encode(), "pseudonym": store.caller_ref(caller["caller_id"]).encode(),
               "call id": call_id.encode(),
               "audio": _audio_slice((sources / "calls" / caller["audio"]).read_bytes())}
    redacted = {doc["call_id"]: doc for doc in store.read_redacted()}
    others = [json.dumps(doc) for path in sources.glob("*/*.json")
              if (doc := json.loads(path.read_text()))["call_id"] != call_id]
    others += [json.dumps(doc) for cid, doc in redacted.items() if cid != call_id]
    elsewhere = "\n".join([*others, *(p.read_text() for p in BANKING77.glob("*.csv"))])
    texts = [t["text"] for doc in (caller, redacted[call_id]) for t in doc["turns"] if t["speaker"] == "customer"]
    for index, text in enumerate(texts):
        if len(text) >= 20 and text not in elsewhere:
            needles[f"text #{index}"] = text.encode()
    lowered = elsewhere.lower()
    words = {w for text in texts for w in re.findall(r"[a-z]{6,}", text.lower()) if w not in lowered}
    needles |= {f"word {w}": w.encode() for w in sorted(words)}
    return needles


def _search(blobs: Iterable[tuple[str, bytes]], needles: dict[str, bytes]) -> Found:
    """Needle -> the blobs holding it; words are found as whole words, and not in public vocabularies; a call id
    in a key is found too, and in a store state file's content it is allowed (tombstones, journals)."""
    words = {name: re.compile(rb"(?<![A-Za-z])" + re.escape(needle) + rb"(?![A-Za-z])", re.IGNORECASE)
             for name, needle in needles.items() if name.startswith("word ")}
    found: Found = {}
    for where, data in blobs:
        for name, needle in needles.items():
            hit: bool
            if name in words:
                hit = where.rsplit("/", 1)[-1].split("@")[0] not in PUBLIC_VOCABULARIES \
                    and words[name].search(data) is not None
            elif name == "call id":
                hit = needle.decode() in where or (STATE not in where and needle in data)
            else:
                hit = needle in data
            if hit:
                found.setdefault(name, set()).add(where)
    return found


def _bucket(s3: S3, bucket: str, keyring: Keyring | None = None) -> Iterator[tuple[str, bytes]]:
    """Every object version and delete marker in ``bucket`` as (``s3://bucket/key@n``, bytes), ``.enc`` objects
    decrypted too (with ``keyring``)."""
    for index, (key, data) in enumerate(s3.versions(bucket)):
        blob = data or b""
        if keyring is not None and blob and key.endswith(".enc"):
            with contextlib.suppress(RawKeyError):
                blob += keyring.raw.decrypt(blob, key)
        yield f"s3://{bucket}/{key}@{index}", blob


def _database(url: str) -> Iterator[tuple[str, bytes]]:
    """Every row of every table of the database, each column cast to text (bytea columns as their bytes)."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        columns: dict[str, list[sql.Composable]] = {}
        for table, column, kind in conn.execute(
                "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c"
                " JOIN information_schema.tables t USING (table_schema, table_name)"
                " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
                " ORDER BY c.table_name, c.ordinal_position"):
            name = sql.Identifier(column)
            columns.setdefault(table, []).append(name if kind == "bytea" else sql.SQL("{}::text").format(name))
        for table, selected in columns.items():
            query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(selected), sql.Identifier(table))
            for number, row in enumerate(conn.execute(query)):
                values = [v if isinstance(v, bytes) else str(v).encode() for v in row if v is not None]
                yield f"{table}#{number}", b"\x1f".join(values)


def test_retrain_promote_and_erase_leave_nothing_on_s3_postgres_mlflow_and_dask(
        tiny_corpus: Path, tmp_path: Path, s3: S3, mlflow_server: MlflowServer,
        prefect_harness: None) -> None:
    from mlflow.tracking import MlflowClient
    from prefect import get_client
    from prefect.client.schemas.filters import TaskRunFilter, TaskRunFilterTags

    from flows.erase import erase_caller
    from flows.retrain import retrain
    from training.finetune import MODEL_ARTIFACT

    store_bucket, dvc_bucket = s3.bucket(versioned=True), s3.bucket(versioned=True)
    sources = tmp_path / "sources"
    shutil.copytree(tiny_corpus, sources)
    names = uuid.uuid4().hex[:8]  # the server is the session's: this project's experiment and models of its own
    tracking = {"tracking_uri": mlflow_server.url, "experiment": f"loopback-{names}",
                "bundle_name": f"bundle-{names}", "intent_model_name": f"intent-{names}",
                "asr_model_name": f"asr-{names}"}
    params = flow_params(tmp_path, sources, store={"url": f"s3://{store_bucket}/voiceloop"},
                         dvc={"remote_url": f"s3://{dvc_bucket}/dvc"}, tracking=tracking,
                         compute={"fan_out": True, "workers": 2})
    settings = load_settings(params)

    summary = retrain(params_file=str(params)).to_json()

    # the topology was used: redaction shards ran as Prefect task runs on Dask, MLflow kept nothing local
    with get_client(sync_client=True) as prefect:
        shards = prefect.read_task_runs(task_run_filter=TaskRunFilter(
            tags=TaskRunFilterTags(all_=[f"flow-run:{summary['flow_run_id']}"])))
    assert {run.name.rsplit("-", 1)[0] for run in shards} >= {"redact-text", "redact-audio"}
    assert not (settings.root / "mlflow.db").exists() and not (settings.root / "mlartifacts").exists()
    client = MlflowClient(tracking_uri=mlflow_server.url)
    run = client.get_run(summary["training"]["run_id"])
    assert run.info.artifact_uri.startswith("mlflow-artifacts:")
    artifacts = {key for key, _ in s3.versions(mlflow_server.bucket)}
    assert any(key.startswith(f"{mlflow_server.prefix}/") and f"{run.info.run_id}/artifacts/{MODEL_ARTIFACT}/" in key
               for key in artifacts), sorted(artifacts)
    # the gate promoted the first challenger: the champion alias is on the server
    assert summary["gate"]["promoted"]
    champion = client.get_model_version_by_alias(tracking["bundle_name"], "champion")
    assert champion.version == summary["gate"]["bundle_version"] and champion.run_id == run.info.run_id
    dvc_objects = [key for key, data in s3.versions(dvc_bucket) if data is not None]
    assert any(key.endswith(".dir") for key in dvc_objects)  # datasets pushed to the S3 remote

    caller = _caller(sources)
    needles = _needles(settings, sources, caller)
    keyring = Keyring(settings.keys_dir)

    def everywhere() -> dict[str, Found]:
        return {"store": _search(_bucket(s3, store_bucket, keyring), needles),
                "dvc": _search(_bucket(s3, dvc_bucket), needles),
                "mlflow artifacts": _search(_bucket(s3, mlflow_server.bucket), needles),
                "mlflow database": _search(_database(mlflow_server.database), needles)}

    # positive controls: the search finds every needle in the store's versions, the call's rows in the DVC
    # remote, and the database dump holds what the run logged (the training set's digest)
    before = everywhere()
    assert set(before["store"]) == set(needles), set(needles) - set(before["store"])
    assert "call id" in before["dvc"] and any(name.startswith(("text", "word")) for name in before["dvc"])
    digest = summary["datasets"]["intent-train"]["digest"].encode()
    assert any(digest in data for _, data in _database(mlflow_server.database))

    outcome = erase_caller(settings, "compliance-officer", caller["caller_id"])
    assert outcome.certificate["call_ids"] == [caller["call_id"]]
    assert any(d["name"] == "intent-train" for d in outcome.certificate["datasets"])
    assert outcome.certificate["dvc"]["remote"]["objects"]

    after = everywhere()
    assert {where: found for where, found in after.items() if found} == {}
    marked = client.get_model_version(tracking["bundle_name"], champion.version).tags
    assert marked["voiceloop.retrain_required"] == outcome.certificate["request_id"]
