"""Export a merged transformers Whisper to CTranslate2 (int8) for the serving runtime.

Uses CTranslate2's own converter. transformers 5 saves the feature extractor's settings in
``processor_config.json``; faster-whisper reads ``preprocessor_config.json`` (mel bins, hop),
so that file is written from the processor beside the converted model, with the tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXPORT_MARKER = "voiceloop-export.json"


def export_ctranslate2(merged_dir: Path, out_dir: Path, quantization: str = "int8",
                       window_s: float | None = None) -> Path:
    """Convert ``merged_dir`` (model + processor) into ``out_dir``, loadable by ``faster_whisper.WhisperModel``.

    ``window_s`` (the window the model was trained on) is recorded in the marker so serving uses it.
    """
    import ctranslate2
    from transformers import WhisperFeatureExtractor

    converter = ctranslate2.converters.TransformersConverter(str(merged_dir), copy_files=["tokenizer.json"])
    converter.convert(str(out_dir), quantization=quantization, force=True)
    extractor: Any = WhisperFeatureExtractor.from_pretrained(str(merged_dir))
    (out_dir / "preprocessor_config.json").write_text(extractor.to_json_string())
    (out_dir / EXPORT_MARKER).write_text(
        json.dumps({"format": "ctranslate2", "quantization": quantization, "window_s": window_s}, indent=1)
    )
    return out_dir


def exported_window(model_dir: Path) -> float | None:
    """The window an exported model was trained on (None: unknown, e.g. a model from elsewhere)."""
    marker = Path(model_dir) / EXPORT_MARKER
    if not marker.exists():
        return None
    value = json.loads(marker.read_text()).get("window_s")
    return float(value) if value is not None else None
