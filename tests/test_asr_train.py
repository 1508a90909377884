"""ASR retraining pieces with the real Whisper tiny.en weights: windows, LoRA scope, data, export."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from core.settings import load_settings
from tests.flow_helpers import TrainedProject, clone_project, retrained_template, trained_template
from training.asr import windowed
from training.asr.convert import load_base_whisper
from training.asr.data import target_transcript
from training.asr.train import lora_target_regex, transcribe_hf
from training.precision import native_bf16

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "sample" / "speech_fixtures" / "librivox"


@pytest.fixture(scope="module")
def whisper(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, object]:
    return load_base_whisper("tiny.en-bundled", tmp_path_factory.mktemp("asr-cache"))


def test_windowed_encoder_equals_transformers_on_full_windows(whisper: tuple[object, object]) -> None:
    model, _ = whisper
    features = torch.from_numpy(np.stack([windowed.log_mel(np.random.default_rng(0).normal(0, 0.1, 48_000)
                                                           .astype(np.float32), 3000)]))
    with torch.inference_mode():
        ours = windowed.encode(model, features)
        theirs = model.get_encoder()(features).last_hidden_state  # type: ignore[attr-defined]
    assert torch.allclose(ours, theirs, atol=1e-5)
    with pytest.raises(ValueError, match="even number"):
        windowed.encode(model, features[..., :999])


def test_short_audio_goes_in_the_short_window_long_audio_in_30_s() -> None:
    assert windowed.window_frames(3 * 16_000, 10.0) == 1000
    assert windowed.window_frames(int(9.6 * 16_000), 10.0) == 3000  # too close to the edge
    assert windowed.window_frames(12 * 16_000, 10.0) == 3000


def test_lora_targets_the_decoder_and_only_the_top_encoder_layers(whisper: tuple[object, object]) -> None:
    model, _ = whisper
    regex = re.compile(lora_target_regex(["q_proj", "v_proj"], 1, 4))
    names = [name for name, _ in model.named_modules() if regex.fullmatch(name)]  # type: ignore[attr-defined]
    assert names and all(n.endswith(("q_proj", "v_proj")) for n in names)
    assert {n.split(".layers.")[1].split(".")[0] for n in names if ".encoder." in n} == {"3"}
    assert any(".decoder." in n and "encoder_attn" in n for n in names)  # cross-attention learns too
    decoder_only = re.compile(lora_target_regex(["q_proj"], 0, 4))
    assert not [n for n, _ in model.named_modules() if decoder_only.fullmatch(n) and ".encoder." in n]  # type: ignore[attr-defined]


def test_merge_scale_interpolates_between_base_and_fine_tuned_weights(whisper: tuple[object, object]) -> None:
    import copy

    from peft import LoraConfig, get_peft_model

    from training.asr.train import scale_adapter

    model, _ = whisper
    name = "model.decoder.layers.0.self_attn.q_proj.weight"
    base = dict(model.named_parameters())[name].detach().clone()  # type: ignore[attr-defined]

    def merged(scale: float) -> torch.Tensor:
        torch.manual_seed(0)  # the same A and B at every scale
        peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj"]))
        for param_name, param in peft_model.named_parameters():
            if "lora_B" in param_name:  # B starts at zero: give the update something to scale
                torch.nn.init.normal_(param, std=0.1)
        scale_adapter(peft_model, scale)
        return dict(peft_model.merge_and_unload().named_parameters())[name].detach()

    full, half, none = merged(1.0), merged(0.5), merged(0.0)
    assert not torch.allclose(full, base, atol=1e-4)
    assert torch.allclose(none, base) and torch.allclose(half, (base + full) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="between 0 and 1"):
        scale_adapter(model, 1.5)


@pytest.mark.skipif(not native_bf16(), reason="bf16 autocast is only used where the CPU has native bf16")
def test_bf16_training_learns_and_keeps_float32_weights(whisper: tuple[object, object]) -> None:
    import copy

    from training.asr.clean_speech import clean_speech_set
    from training.asr.train import Utterance, train_whisper_lora

    model, processor = whisper
    clips = [Utterance(c.audio, c.text) for c in clean_speech_set()[:2]]
    config = load_settings().asr.model_copy(update={"epochs": 1, "batch_size": 2, "bf16": True})
    losses: list[float] = []
    trained = train_whisper_lora(copy.deepcopy(model), processor.tokenizer, clips, config,  # type: ignore[attr-defined]
                                 on_epoch=lambda _, metrics, __: losses.append(metrics["train_loss"]))
    lora_b = [p for n, p in trained.named_parameters() if "lora_B" in n]
    assert losses and np.isfinite(losses[0])
    assert all(p.dtype == torch.float32 for p in lora_b) and any(bool(p.abs().sum() > 0) for p in lora_b)


def test_redacted_spans_are_removed_where_the_audio_was_silenced() -> None:
    assert target_transcript("My email is <EMAIL_ADDRESS>.") == "My email is."
    assert target_transcript("<PERSON> here, card <CREDIT_CARD> please") == "here, card please"
    assert target_transcript("<PHONE_NUMBER>") == ""


def test_merged_model_transcribes_real_speech_like_faster_whisper(whisper: tuple[object, object]) -> None:
    """The transformers path (training, per-epoch WER) and serving agree on the base model."""
    import soundfile as sf

    from core.asr import AsrEngine
    from training.asr.metrics import utterance_errors, wer

    model, processor = whisper
    wavs = sorted(FIXTURES.glob("*.wav"))[:3]
    audios = [sf.read(str(p), dtype="float32")[0] for p in wavs]
    references = [p.with_suffix(".txt").read_text() for p in wavs]
    ours = transcribe_hf(model, processor.tokenizer, audios, window_s=30.0)  # type: ignore[attr-defined]
    served = AsrEngine(compute_type="float32", window_s=None).transcribe_batch(audios)
    assert abs(wer(utterance_errors(references, ours)) - wer(utterance_errors(references, served))) <= 0.02


@pytest.mark.usefixtures("prefect_harness")
def test_the_retrain_table_shows_both_fine_tunings_and_what_each_step_cost(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from rich.console import Console

    from flows.summary import RetrainSummary
    from voiceloop.cli import _summary_table

    summary = trained_template(tiny_corpus, tmp_path_factory).summary  # the --json form
    console = Console(record=True, width=300)
    console.print(_summary_table(RetrainSummary.model_validate(summary)))  # the table renders the same object
    text = console.export_text()
    assert "fine-tune intent" in text and f"golden WER {summary['asr']['golden_wer']:.4f}" in text
    assert "CPU (s)" in text and str(summary["cpu_s"]["redact"]) in text
    if "train_lanes" in summary["timings_s"]:  # two cores or more: the fine-tunings ran side by side
        assert "side by side" in text and str(summary["cpu_s"]["train_lanes"]) in text


@pytest.mark.usefixtures("prefect_harness")
def test_exported_model_scores_within_one_point_of_the_merged_model(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The int8 CTranslate2 export (what serves) is faithful to the merged model.

    The merged model is decoded by transformers (what training's per-epoch WER uses) and, converted
    without quantization, by the serving decoder: the two must give the same text for nearly every
    utterance (the rest are greedy loops whose tails serving's silence rule and token cap cut a
    token earlier or later). int8 must then cost at most 1 word on the clean real recordings,
    which this one-epoch model transcribes well. On the golden calls it is still at WER ~0.6
    (telephone ~0.8), where int8 rounding flips wrong words either way: measured +3.3 and -5.4
    points on these 84 turns for two template models, so the whole-set bound here is loose. The
    issue's 1-point bar is measured on the benchmark model: +0.27 points (benchmarks/README.md#asr).
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from governance.session import open_store
    from training.asr.export import export_ctranslate2
    from training.asr.finetune import GoldenAudio
    from training.asr.metrics import utterance_errors, wer
    from training.datasets import open_version

    project: TrainedProject = trained_template(tiny_corpus, tmp_path_factory)
    settings = load_settings(project.params)
    assert project.summary["asr"]["golden_wer"] < 1.0
    gate = {c["name"]: c for c in project.summary["gate"]["criteria"]}
    assert {"asr_wer", "asr_wer_slices", "digit_accuracy", "clean_speech", "serving_latency"} <= set(gate)
    assert "on 8 golden utterances" in gate["serving_latency"]["rule"] and gate["serving_latency"]["challenger"] > 0
    e2e = project.summary["gate"]["e2e_intent_accuracy"]  # the first bundle: reported, no champion to compare
    assert e2e["n"] > 0 and 0 <= e2e["challenger"] <= 1 and e2e["champion"] is None
    assert gate["clean_speech"]["challenger"] == project.summary["asr"]["clean_speech_errors"]
    assert gate["asr_wer"]["challenger"] == pytest.approx(project.summary["asr"]["golden_wer"])
    assert {s["name"] for s in project.summary["gate"]["asr_slices"]} >= {
        "asr_wer[channel=clean16k]", "asr_wer[channel=telephone8k]"}
    merged_dir = next((settings.root / "work" / "asr").glob("*/merged"))
    store = open_store(settings, "ml-engineer", "evaluation")
    info = project.summary["datasets"]["asr-golden"]
    golden = GoldenAudio.load(open_version(store, "asr-golden", info["digest"]), digit_eval=0)
    assert len(golden.audios) >= 50

    merged = WhisperForConditionalGeneration.from_pretrained(str(merged_dir))
    processor = WhisperProcessor.from_pretrained(str(merged_dir))
    transformers_texts = transcribe_hf(merged, processor.tokenizer, golden.audios, settings.asr.window_s)
    unquantized_dir = export_ctranslate2(merged_dir, tmp_path_factory.mktemp("float32"), "float32",
                                         settings.asr.window_s)
    unquantized_run = golden.transcribe(unquantized_dir, settings.asr.window_s, 8, compute_type="float32")
    unquantized = unquantized_run.hypotheses
    same = sum(a == b for a, b in zip(transformers_texts, unquantized, strict=True))
    assert same >= 0.85 * len(unquantized)  # the rest: greedy loops that serving's silence rule cuts

    exported = golden.transcribe(merged_dir.parent / "asr_model", settings.asr.window_s, 8)
    clean = [sum(e.errors for e in utterance_errors(golden.clean_references, run.clean_hypotheses))
             for run in (unquantized_run, exported)]
    assert len(golden.clean_audios) == 6 and clean[1] - clean[0] <= 1, clean  # rounding may also fix words
    merged_wer = wer(utterance_errors(golden.references, unquantized))
    exported_wer = wer(utterance_errors(golden.references, exported.hypotheses))
    assert abs(exported_wer - merged_wer) <= 0.08, (merged_wer, exported_wer)


@pytest.mark.usefixtures("prefect_harness")
def test_a_new_asr_run_beside_a_reused_intent_run_is_gated_as_a_new_bundle(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Changing an ASR setting retrains the ASR only; the gate must judge that pair, not replay the old verdict."""
    from flows.retrain import retrain
    from training.registry import Registry

    retrained = retrained_template(tiny_corpus, tmp_path_factory)  # the template, retrained with merge_scale 0.5
    [first] = retrained.earlier
    summary = retrained.summary
    assert summary["training"]["reused"] and not summary["asr"]["reused"]
    gate = summary["gate"]
    assert not gate["repeated"] and "clean_speech" in {c["name"] for c in gate["criteria"]}
    assert summary["asr"]["champion_transcribed"]  # beside the ASR training, in the other lane
    assert summary["asr"]["challenger_transcribed"]
    assert int(gate["bundle_version"]) > int(first["gate"]["bundle_version"])
    project = clone_project(retrained, tmp_path_factory.mktemp("asr-regate"))
    registry = Registry(project.settings)
    before = registry.bundle(first["gate"]["bundle_version"]).components
    after = registry.bundle(gate["bundle_version"]).components
    assert after["intent"] == before["intent"]  # the reused intent run is one model version, not two
    assert after["asr"] != before["asr"]
    again = retrain(params_file=str(project.params)).to_json()  # nothing new: the recorded verdict for this pair
    assert again["gate"]["repeated"] and again["gate"]["bundle_version"] == gate["bundle_version"]
    assert again["gate"]["verdict"] == gate["verdict"]
    assert not again["asr"]["champion_transcribed"]  # a gated pair: the comparison is not redone,
    assert not again["asr"]["challenger_transcribed"]  # nor the challenger's golden transcription
    headline = ("golden_wer", "digit_accuracy", "clean_speech_errors")  # read back from the run instead
    assert {k: again["asr"][k] for k in headline} == {k: summary["asr"][k] for k in headline}


def test_the_champions_golden_outputs_are_kept_beside_the_golden_version_and_reused(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """In the governed store with the version they were computed on (audited), never in an MLflow run."""
    from governance.access import AccessDenied
    from governance.audit import open_audit
    from governance.session import open_store
    from training.asr.finetune import GoldenAudio
    from training.datasets import open_version
    from training.promotion import champion_asr, champion_predictions
    from training.registry import Registry

    project = clone_project(trained_template(tiny_corpus, tmp_path_factory), tmp_path_factory.mktemp("asr-cache"))
    settings = project.settings
    registry = Registry(settings)
    assert registry.by_alias("champion").components.get("asr")  # type: ignore[union-attr]
    store = open_store(settings, "ml-engineer", "training")
    digest = project.summary["datasets"]["asr-golden"]["digest"]
    golden = GoldenAudio.load(open_version(store, "asr-golden", digest))
    work = tmp_path_factory.mktemp("champion-work")
    evaluations = settings.zones_dir / "datasets" / "asr-golden" / f"{digest}.evaluations"
    # the promotion kept the bundle's golden transcripts, made while it was the challenger, as the champion's
    [promoted] = evaluations.glob("champion-asr-*.json")
    kept_at_promotion = champion_asr(registry, store, golden, settings.asr.window_s, 8, work)
    assert kept_at_promotion.cached and "champion ASR" in kept_at_promotion.label
    promoted.unlink()  # as a version kept before promotions kept them: the champion transcribes once
    audit = open_audit(settings)
    since = max(entry.id for entry in audit.entries())
    first = champion_asr(registry, store, golden, settings.asr.window_s, 8, work)
    again = champion_asr(registry, store, golden, settings.asr.window_s, 8, work)
    assert not first.cached and again.cached and "champion ASR" in again.label
    assert again.evaluation == first.evaluation
    assert first.evaluation == kept_at_promotion.evaluation  # what the promotion kept is the champion's own
    other = GoldenAudio.load(open_version(store, "asr-golden", digest), digit_eval=0)  # another evaluation set
    assert not champion_asr(registry, store, other, settings.asr.window_s, 8, work).cached
    kept = sorted(evaluations.glob("*.json"))
    assert len(kept) == 2 and all(p.name.startswith("champion-asr-") for p in kept)
    assert not list((settings.root / "mlartifacts").rglob("champion-*"))  # nothing beside the models
    [written, _other] = audit.entries(action="datasets.write-evaluation", since_id=since)
    [read] = audit.entries(action="datasets.read-evaluation", since_id=since)
    assert written.call_ids == read.call_ids and written.call_ids  # audited with the golden calls
    evaluator = open_store(settings, "serving", "evaluation")  # may read the golden set, not write beside it
    with pytest.raises(AccessDenied):
        evaluator.write_evaluation("asr-golden", digest, "champion-asr-forged", {"texts": []})

    # the intent champion's golden predictions: kept the same way, by the texts they are for
    intent_golden = open_version(store, "intent-golden", project.summary["datasets"]["intent-golden"]["digest"])
    texts = ["I still have not received my new card", "how do I top up by bank transfer"]
    predicted = champion_predictions(registry, store, intent_golden, texts, work)
    reread = champion_predictions(registry, store, intent_golden, texts, work)
    assert predicted is not None and reread is not None and not predicted.cached and reread.cached
    assert reread.predictions == predicted.predictions and len(reread.predictions) == 2
    assert not champion_predictions(registry, store, intent_golden, texts[:1], work).cached  # type: ignore[union-attr]


def _redacted_call(call_id: str, turns: list[tuple[float, float]]) -> dict[str, object]:
    return {
        "call_id": call_id, "started_at": "2026-11-20T10:00:00+00:00", "caller_ref": "ref", "split": "train",
        "consent_training": True, "outcome": None, "meta": {"voice": "v", "channel": "clean16k", "snr_db": None},
        "audio": {"sample_rate": 16000}, "raw_digest": "x", "quarantined_turns": 0,
        "turns": [{"index": i, "speaker": "customer", "start_s": a, "end_s": b, "text": "t",
                   "transcript": "my card is <CREDIT_CARD> thanks", "intent": "card_arrival", "pii_types": []}
                  for i, (a, b) in enumerate(turns)],
    }


def test_bad_audio_is_reported_by_call_and_turn_and_skipped(tmp_path: Path) -> None:
    """Unreadable audio, a wrong sample rate, a 0-second turn, silence, no audio: named, skipped, no crash."""
    from governance.audit import Actor, AuditLog
    from governance.crypto import Keyring
    from governance.store import GovernedStore
    from governance.validation import turn_rows
    from training.asr.data import call_turn_rows, wav_bytes

    audit = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    writer = GovernedStore(tmp_path / "zones", audit, Actor(role="admin", purpose="redaction", user="t"),
                           keyring=Keyring(tmp_path / "keys", environ={}))
    tone = (0.3 * np.sin(np.arange(48_000) * 2 * np.pi * 440 / 16_000)).astype(np.float32)
    calls = {
        "good": ([(0.0, 1.5), (1.5, 1.5), (1.5, 2.9)], wav_bytes(tone, 16_000)),  # turn 1 lasts 0 s
        "garbage": ([(0.0, 1.0)], b"RIFF not really a wav file"),
        "rate": ([(0.0, 1.0)], wav_bytes(tone, 22_050)),
        "silent": ([(0.0, 1.0)], wav_bytes(np.zeros(16_000, dtype=np.float32), 16_000)),
        "missing": ([(0.0, 1.0)], None),
    }
    writer.write_redacted([_redacted_call(name, turns) for name, (turns, _) in calls.items()])
    for name, (_, audio) in calls.items():
        if audio is not None:
            writer.write_redacted_audio(name, audio, ".wav")
    reader = writer.as_purpose("training")
    validated = turn_rows(reader.read_redacted())
    rows, skipped = call_turn_rows(reader, validated, "train", [8000, 16000])
    assert [(r["call_id"], r["turn"], r["text"]) for r in rows] == [("good", 0, "my card is thanks"),
                                                                    ("good", 2, "my card is thanks")]
    reasons = {(s.call_id, s.turn): s.reason for s in skipped}
    assert set(reasons) == {("good", 1), ("garbage", None), ("rate", None), ("silent", 0), ("missing", None)}
    assert "0.00 s" in reasons[("good", 1)] and "unreadable" in reasons[("garbage", None)]
    assert "22050 Hz" in reasons[("rate", None)] and "silent" in reasons[("silent", 0)]
    assert "no redacted audio" in reasons[("missing", None)]
