"""Load a saved LoRA adapter's weights into a freshly wrapped PEFT model of the same shape (a warm start).

A warm start (training/warm_start.py) builds the model exactly as a cold run does and then fills its LoRA
matrices with the champion's, so everything after (the layer caches, the optimiser, saving) is the cold path.
A saved adapter that does not fit the wrapped model is an error, never a partial load.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ADAPTER_WEIGHTS = "adapter_model.safetensors"  # what PEFT's save_pretrained writes


class AdapterMismatch(ValueError):
    """A saved adapter whose LoRA weights do not fit the model it should start."""


def load_lora_weights(peft_model: Any, adapter_dir: Path, adapter_name: str = "default") -> int:
    """Copy the LoRA weights saved in ``adapter_dir`` into ``peft_model``'s adapter ``adapter_name``;
    returns how many tensors were loaded."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = Path(adapter_dir) / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise FileNotFoundError(f"no LoRA weights at {weights}: the champion's adapter folder is incomplete; "
                                "set warm_start.enabled: false to train from the base model")
    state = load_file(str(weights))
    try:
        result: Any = set_peft_model_state_dict(peft_model, state, adapter_name=adapter_name)
    except RuntimeError as error:  # a size mismatch: another rank, another base model
        raise AdapterMismatch(f"the adapter in {adapter_dir} does not fit this model: {error}") from error
    missing = [key for key in result.missing_keys if "lora_" in key and f".{adapter_name}." in key]
    unexpected = [key for key in result.unexpected_keys if "lora_" in key]
    if missing or unexpected:
        raise AdapterMismatch(f"the adapter in {adapter_dir} does not fit this model: "
                              f"{len(missing)} LoRA weights missing (e.g. {missing[:1]}), "
                              f"{len(unexpected)} unexpected (e.g. {unexpected[:1]})")
    return len(state)
