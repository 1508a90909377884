"""``voiceloop transcribe``: audio files to JSON Lines of text and timed words, with any ASR model.

Example::

    $ voiceloop transcribe call1.wav call2.flac
    {"path": "call1.wav", "text": "My card has not arrived.", "words": [{"word": "My", "start": 0.0, "end": 0.24}, ...]}
    {"path": "call2.flac", "error": "not an audio file PyAV can decode (Invalid data found when processing input)"}

One line per file on stdout, in the order given; everything for humans (the model used, a
progress bar, errors) goes to stderr. Times are seconds from the start of the file. A file that
cannot be transcribed gets an ``error`` line and the others go on; the exit code is then 1.

``--model`` picks the model: ``champion`` / ``challenger`` (the ASR component of that bundle in
the project's model registry), ``tiny.en-bundled`` (the base model shipped with voiceloop), or the
path of a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json,
preprocessor_config.json). Utterances are decoded in batches in short fixed windows
(:meth:`core.asr.AsrEngine.transcribe_words_batch`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from core.asr import ModelError, ct2_export_folder
from core.file_transcription import transcribe_files
from core.settings import Settings
from voiceloop.cli_common import ParamsOption, console, fail, load

BUNDLED = "tiny.en-bundled"
ALIASES = ("champion", "challenger")
commands = typer.Typer()


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # what AsrEngine loads: BUNDLED or a local CTranslate2 folder
    description: str  # for stderr


def _registry_bundle(settings: Settings, alias: str) -> Any:
    """The bundle holding ``alias``, or None when there is none (or no registry at all yet)."""
    if not settings.tracking.tracking_uri and not (settings.root / "mlflow.db").exists():
        return None  # no registry yet: don't create one just to find it empty
    from training.registry import Registry

    return Registry(settings).by_alias(alias)


def resolve_model(spec: str, settings: Settings, work_dir: Path) -> ResolvedModel:
    """Turn ``--model`` into a loadable model; registry components are downloaded into ``work_dir``."""
    if spec == BUNDLED:
        return ResolvedModel(BUNDLED, f"the bundled base model ({BUNDLED})")
    if spec in ALIASES:
        bundle = _registry_bundle(settings, spec)
        reference = bundle.components.get("asr") if bundle is not None else None
        if reference is None:
            if spec == "challenger":
                where = "no challenger bundle" if bundle is None else f"challenger bundle v{bundle.version} has no ASR"
                raise ModelError(
                    f"--model challenger: {where} in the registry at {settings.tracking_uri}; run `voiceloop retrain` "
                    "to train one, or pass --model champion or a model folder"
                )
            why = "no champion bundle yet" if bundle is None else f"champion bundle v{bundle.version} has no ASR model"
            return ResolvedModel(BUNDLED, f"{why}: the champion's ASR is the bundled base model ({BUNDLED})")
        from training.registry import Registry

        try:
            folder = Registry(settings).download_component(reference, work_dir / "asr")
        except Exception as err:  # MLflow raises several kinds; the message is what the user needs
            raise ModelError(f"--model {spec}: could not download {reference} from the registry: {err}") from None
        return ResolvedModel(str(ct2_export_folder(folder, f"{spec} ASR {reference}")),
                             f"the {spec} bundle v{bundle.version} ASR model {reference}")
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(
            f"--model {spec}: no such folder; give champion, challenger, {BUNDLED} or a CTranslate2 Whisper folder"
        )
    return ResolvedModel(str(ct2_export_folder(path, f"--model {spec}")), f"{path}")


def _write(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@contextmanager
def _progress() -> Iterator[Any]:
    with Progress(
        TextColumn("[bold]transcribing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as progress:
        yield progress


@commands.command()
def transcribe(
    files: Annotated[list[Path], typer.Argument(help="audio files: any format and sample rate FFmpeg reads")],
    model: Annotated[
        str,
        typer.Option(help=f"champion, challenger (the registry bundle's ASR), {BUNDLED}, or a CTranslate2 "
                          "Whisper folder"),
    ] = "champion",
    batch_size: Annotated[int, typer.Option(min=1, help="utterances encoded and decoded together")] = 8,
    window_s: Annotated[
        float | None,
        typer.Option(help="seconds (1-30) of the fixed window short audio is padded to; 30: Whisper's own "
                              "(slower); default: asr.window_s of the params"),
    ] = None,
    params: ParamsOption = None,
) -> None:
    """Transcribe audio files: one JSON line per file on stdout with the text and timed words.

    Output: {"path", "text", "words": [{"word", "start", "end"}]} per file, in the order given
    (seconds from the start of the file); {"path", "error"} for a file that cannot be
    transcribed (also named on stderr; the others go on, and the exit code is 1).

    Models: champion (default) or challenger is the ASR model of that bundle in the project's
    registry; a champion without one is the bundled base model (tiny.en-bundled). A folder is
    loaded as a CTranslate2 Whisper export (model.bin, config.json, tokenizer.json).

    Examples:

    voiceloop transcribe call.wav

    voiceloop transcribe --model challenger data/golden/audio/*.wav > challenger.jsonl

    voiceloop transcribe --model ./my-whisper-ct2 --batch-size 16 a.flac b.mp3

    voiceloop transcribe --window-s 30 long_turns/*.wav   # Whisper's 30 s window, as served before
    """
    settings = load(params)
    window = window_s if window_s is not None else settings.asr.window_s
    if not 1.0 < window <= 30.0:
        raise typer.BadParameter(f"{window:g} s; give more than 1 and at most 30", param_hint="--window-s")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="voiceloop-transcribe-") as work:
        try:
            resolved = resolve_model(model, settings, Path(work))
        except ModelError as err:
            fail(escape(str(err)))
        console.print(f"model: {escape(resolved.description)}", soft_wrap=True)
        from core.asr import AsrEngine
        from training.asr.export import exported_window

        if window_s is None and resolved.path and (trained := exported_window(Path(resolved.path))):
            window = trained  # the window the model was trained on

        from core.device import DeviceUnavailable, ct2_device

        try:
            device = ct2_device(settings.compute.device).device
        except DeviceUnavailable as err:
            fail(escape(str(err)))
        try:
            engine = AsrEngine.for_throughput(resolved.path, settings.threads or min(4, os.cpu_count() or 1),
                                              window_s=window, device=device)
        except Exception as err:  # CTranslate2 / tokenizers errors on a broken export
            fail(escape(f"--model {model}: could not load {resolved.path}: {err}"))
        failed, seconds = 0, 0.0
        with _progress() as progress:
            task = progress.add_task("transcribe", total=len(files))
            for result in transcribe_files(engine, files, batch_size, window,
                                           lambda done: progress.update(task, completed=done)):
                if result.error is not None:
                    failed += 1
                    console.print(f"[bold red]error:[/] {escape(f'{result.path}: {result.error}')}", soft_wrap=True)
                seconds += result.duration_s
                _write(result.record())
    elapsed = time.perf_counter() - started
    console.print(f"transcribed {len(files) - failed} of {len(files)} files ({seconds:.1f} s of audio) "
                  f"in {elapsed:.1f} s" + (f"; [bold red]{failed} failed[/]" if failed else ""))
    if failed:
        raise typer.Exit(1)
