"""MLflow tracking setup and the model registry: models promoted as one bundle.

A bundle is a registered model whose versions each name the exact component model versions
they contain (``intent``, and ``asr`` when the run retrained it). Aliases live on the bundle: ``challenger``
is the newest candidate, ``champion`` the one serving, ``previous`` the champion it replaced.
The ``champion`` alias moves only through :meth:`Registry.move_champion`: the gate calls it
(:meth:`Registry.promote`), and so do a manual promotion and a rollback (training/rollout.py).
Every move, and every rejection by the gate, is kept as an :class:`AliasMove` in a tag of the
bundle's registered model, so the history travels with the registry (backups, a shared server).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from core.settings import Settings

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
RETRAIN_REQUIRED_TAG = "voiceloop.retrain_required"  # value: the erasure request that made it stale
RETRAIN_REQUIRED_SINCE_TAG = "voiceloop.retrain_required_since"  # ISO time of the first such mark
BASELINE_PREFIX = "voiceloop.baseline."  # golden digest and accuracy the champion was re-measured on
MOVE_PREFIX = "voiceloop.move."  # registered-model tags on the bundle: one AliasMove (JSON) each


def setup_tracking(settings: Settings) -> MlflowClient:
    """Point MLflow at the configured tracking URI and make sure the experiment exists."""
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # On a tracking server MLflow prints every finished run's URL on stdout, which is voiceloop's (``--json``
    # output); the training lanes are spawned with this environment.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    if mlflow.get_tracking_uri() != settings.tracking_uri:
        # MLflow caches each run's artifact store by run id alone, process-wide. A copy of a project
        # (a restored backup, the test suite's clones) has the same run ids at another place, and
        # writes to its runs would land in the original's artifacts: forget them when switching.
        from mlflow.tracking._tracking_service import utils as tracking_utils

        tracking_utils._artifact_repos_cache.clear()
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    if client.get_experiment_by_name(settings.tracking.experiment) is None:
        try:
            client.create_experiment(settings.tracking.experiment, artifact_location=experiment_artifacts(settings))
        except MlflowException as error:  # the other training lane (a process of its own) made it first
            if client.get_experiment_by_name(settings.tracking.experiment) is None:
                raise error
    mlflow.set_experiment(settings.tracking.experiment)
    return client


def experiment_artifacts(settings: Settings) -> str | None:
    """Where a new experiment keeps its artifacts: ``tracking.artifact_location`` when set; else, on a tracking
    server (``http(s)://``), None: the server's own root (``mlflow-artifacts:/``, proxied to its
    ``--artifacts-destination``), never a folder on the machine that happens to create the experiment; else
    the project's ``mlartifacts`` folder."""
    if settings.tracking.artifact_location:
        return settings.tracking.artifact_location
    if urlparse(settings.tracking_uri).scheme in ("http", "https"):
        return None
    return settings.artifact_location


@dataclass(frozen=True)
class BundleVersion:
    version: str
    run_id: str | None
    components: dict[str, str]  # component -> "registered-name/version"
    aliases: tuple[str, ...] = ()

    @property
    def intent_model(self) -> str | None:
        return self.components.get("intent")


@dataclass(frozen=True)
class AliasMove:
    """One decision about the champion: a gate verdict, a manual promotion or a rollback.

    ``action``: ``gate.promote``, ``gate.reject``, ``manual.promote`` or ``rollback``. ``version``
    is the bundle it is about (the new champion, except for ``gate.reject``). ``by`` names who
    decided (``gate``, or ``user as role``); ``evidence`` is what they decided on.
    """

    action: str
    version: str
    champion_before: str | None
    champion_after: str | None
    by: str
    reason: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="milliseconds"))


def with_request(current: str | None, request_id: str) -> str:
    """A ``retrain_required`` value naming ``request_id`` after any requests it already named."""
    requests = [r for r in (current or "").split(",") if r]
    return ",".join(requests if request_id in requests else [*requests, request_id])


def decision_evidence(decision: dict[str, Any], decision_uri: str | None) -> dict[str, Any]:
    """What a gate verdict rested on, small enough for a tag: each criterion's outcome and the full record's URI."""
    return {
        "verdict": decision.get("verdict"),
        "reasons": decision.get("reasons", []),
        "criteria": [{k: c.get(k) for k in ("name", "passed", "status", "decides", "challenger", "champion", "delta",
                                            "interval", "threshold")} for c in decision.get("criteria", [])],
        "decision": decision_uri,
        "report": decision.get("report"),
    }


class UnknownVersion(LookupError):
    """A bundle version that is not a number or not in the registry; the message names the versions there are."""


class Registry:
    def __init__(self, settings: Settings, client: MlflowClient | None = None) -> None:
        self.client = client or setup_tracking(settings)
        self.bundle_name = settings.tracking.bundle_name
        self.intent_name = settings.tracking.intent_model_name
        self.asr_name = settings.tracking.asr_model_name

    def _ensure(self, name: str, description: str) -> None:
        try:
            self.client.get_registered_model(name)
        except MlflowException:
            self.client.create_registered_model(name, description=description)

    def register_component(self, name: str, run_id: str, artifact_path: str) -> str:
        """Register a run's artifact folder as a version of ``name`` (the existing one if that run's folder
        is registered already: a run reused beside a new one is one model, not two); returns the version."""
        self._ensure(name, "voiceloop component model")
        run = self.client.get_run(run_id)
        source = f"{run.info.artifact_uri}/{artifact_path}"
        for existing in self.client.search_model_versions(f"name='{name}' and run_id='{run_id}'"):
            if existing.source == source:
                return str(existing.version)
        version = self.client.create_model_version(name=name, source=source, run_id=run_id)
        return str(version.version)

    def register_bundle(self, run_id: str, components: dict[str, str], evidence: dict[str, Any],
                        tags: dict[str, str] | None = None) -> BundleVersion:
        """Register a bundle version naming its components (and ``tags``); it becomes the ``challenger``."""
        self._ensure(self.bundle_name, "voiceloop serving bundle: the exact component versions served together")
        with mlflow.start_run(run_id=run_id):
            mlflow.log_dict({"components": components, "evidence": evidence}, "bundle/bundle.json")
        run = self.client.get_run(run_id)
        version = self.client.create_model_version(
            name=self.bundle_name,
            source=f"{run.info.artifact_uri}/bundle",
            run_id=run_id,
            tags={**{f"component.{k}": v for k, v in components.items()}, **(tags or {})},
        )
        self.client.set_registered_model_alias(self.bundle_name, CHALLENGER, version.version)
        return self.bundle(str(version.version))

    def version(self, version: str) -> str:
        """``version`` as the registry numbers it ("v01", " 1 " -> "1"), or :class:`UnknownVersion` when it is
        no bundle version: MLflow versions are integers, and a string that differs only in zeros is the same one."""
        digits = version.strip().removeprefix("v").removeprefix("V")
        number = (digits.lstrip("0") or "0") if digits.isascii() and digits.isdigit() else None
        if number is not None:
            try:
                return str(self.client.get_model_version(self.bundle_name, number).version)
            except MlflowException:
                pass
        known = ", ".join(row["version"] for row in self.versions()) or "none yet"
        if number is None:
            raise UnknownVersion(f"{version!r} is not a bundle version: give its number, like 7 or v7 "
                                 f"(versions of {self.bundle_name}: {known})")
        raise UnknownVersion(f"bundle {self.bundle_name} has no version {number} (versions: {known})")

    def bundle(self, version: str) -> BundleVersion:
        mv = self.client.get_model_version(self.bundle_name, version)
        components = {k.split(".", 1)[1]: v for k, v in mv.tags.items() if k.startswith("component.")}
        return BundleVersion(str(mv.version), mv.run_id, components, tuple(mv.aliases or ()))

    def by_alias(self, alias: str) -> BundleVersion | None:
        try:
            mv = self.client.get_model_version_by_alias(self.bundle_name, alias)
        except MlflowException:
            return None
        return self.bundle(str(mv.version))

    def move_champion(self, version: str, *, action: str, by: str, reason: str | None = None,
                      evidence: dict[str, Any] | None = None) -> AliasMove:
        """Make ``version`` the champion (the old one becomes ``previous``) and record the move.

        ``version`` is read as the registry numbers it (:meth:`version`), so "01" is bundle 1: moving
        the champion onto itself leaves ``previous`` alone.
        """
        version = self.version(version)
        current = self.by_alias(CHAMPION)
        if current is not None and current.version != version:
            self.client.set_registered_model_alias(self.bundle_name, PREVIOUS, current.version)
        self.client.set_registered_model_alias(self.bundle_name, CHAMPION, version)
        return self.record(AliasMove(action, version, current.version if current else None, version, by, reason,
                                     evidence or {}))

    def promote(self, version: str, decision: dict[str, Any], decision_uri: str | None = None) -> AliasMove:
        """The gate's promotion: move ``champion`` to ``version`` with the decision as evidence.

        The verdict tag is written last: it marks the decision as carried out (a replay finishes
        a decision whose tag is missing).
        """
        move = self.move_champion(version, action="gate.promote", by="gate",
                                  evidence=decision_evidence(decision, decision_uri))
        self.client.set_model_version_tag(self.bundle_name, move.version, "gate.verdict", decision.get("verdict", ""))
        return move

    def mark_rejected(self, version: str, decision: dict[str, Any], decision_uri: str | None = None) -> AliasMove:
        reasons = "; ".join(decision.get("reasons", []))[:4000]
        self.client.set_model_version_tag(self.bundle_name, version, "gate.reasons", reasons)
        champion = self.by_alias(CHAMPION)
        held = champion.version if champion else None
        move = self.record(AliasMove("gate.reject", version, held, held, "gate",
                                     evidence=decision_evidence(decision, decision_uri)))
        self.client.set_model_version_tag(self.bundle_name, version, "gate.verdict", decision.get("verdict", ""))
        return move

    def record(self, move: AliasMove) -> AliasMove:
        """Keep ``move`` in the bundle's history (a registered-model tag, keyed so that keys sort by time)."""
        stamp = int(datetime.fromisoformat(move.at).timestamp() * 1000)
        key = f"{MOVE_PREFIX}{stamp:013d}.{uuid.uuid4().hex[:8]}"
        self.client.set_registered_model_tag(self.bundle_name, key, json.dumps(asdict(move), sort_keys=True))
        return move

    def moves(self) -> list[AliasMove]:
        """Every recorded decision about the champion, oldest first."""
        try:
            tags = self.client.get_registered_model(self.bundle_name).tags or {}
        except MlflowException:
            return []
        return [AliasMove(**json.loads(tags[key])) for key in sorted(k for k in tags if k.startswith(MOVE_PREFIX))]

    def download_component(self, reference: str, dest: Path) -> Path:
        """Fetch a component ("name/version") into ``dest`` and return the local folder."""
        name, version = reference.rsplit("/", 1)
        source = self.client.get_model_version(name, version).source
        dest.mkdir(parents=True, exist_ok=True)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dest)))

    def versions(self) -> list[dict[str, Any]]:
        """Every bundle version, newest first, with its aliases, gate verdict and components."""
        rows = []
        for mv in self.client.search_model_versions(f"name='{self.bundle_name}'"):
            full = self.client.get_model_version(self.bundle_name, mv.version)
            rows.append(
                {
                    "version": str(mv.version),
                    "created": mv.creation_timestamp,
                    "run_id": mv.run_id,
                    "aliases": list(full.aliases or []),
                    "verdict": full.tags.get("gate.verdict"),
                    "components": {k.split(".", 1)[1]: v for k, v in full.tags.items() if k.startswith("component.")},
                }
            )
        return sorted(rows, key=lambda r: int(r["version"]), reverse=True)

    # -- governance: erasure marks and re-baselines ------------------------------------------------
    def aliases(self) -> dict[str, list[str]]:
        """Bundle version -> its aliases (``search_model_versions`` leaves aliases empty)."""
        out: dict[str, list[str]] = {}
        try:
            registered = self.client.get_registered_model(self.bundle_name)
        except MlflowException:
            return out
        for alias, version in (registered.aliases or {}).items():
            out.setdefault(str(version), []).append(alias)
        return out

    def tag_retrain_required(self, name: str, version: str, request_id: str) -> None:
        """Mark a model or bundle version as trained on erased calls: it must be retrained before reuse.

        The value names the erasure request; an earlier request's mark is kept (comma-joined), so the
        tag says every erasure that touched the version.
        """
        tags = self.client.get_model_version(name, version).tags
        self.client.set_model_version_tag(name, version, RETRAIN_REQUIRED_TAG,
                                          with_request(tags.get(RETRAIN_REQUIRED_TAG), request_id))
        if not tags.get(RETRAIN_REQUIRED_SINCE_TAG):  # the retrain deadline runs from the first mark
            self.client.set_model_version_tag(name, version, RETRAIN_REQUIRED_SINCE_TAG, datetime.now(UTC).isoformat())

    def record_baseline(self, version: str, golden_digest: str, accuracy: float, request_id: str) -> None:
        """Record the champion's accuracy on a rebuilt golden set (the set the next gate compares on)."""
        for key, value in (("golden_digest", golden_digest), ("golden_accuracy", f"{accuracy:.6f}"),
                           ("request_id", request_id)):
            self.client.set_model_version_tag(self.bundle_name, version, BASELINE_PREFIX + key, value)
