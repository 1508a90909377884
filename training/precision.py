"""bf16 autocast for CPU training, only where the CPU multiplies bf16 natively; never on a GPU.

On AVX512-BF16 / AMX CPUs autocast makes training faster (the intent model 1.5-2.5x; Whisper LoRA
1.2-1.4x, benchmarks/training_lanes.py); elsewhere bf16 is emulated and slower than float32, so it
stays off. On a GPU (``compute.device: cuda``, core/device.py) training runs in float32: mixed
precision there is not measured, so the bf16 settings do not switch it on.
Weights and optimiser state stay float32 either way: autocast only lowers the matrix products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def native_bf16(device: str = "cpu") -> bool:
    """Whether training on ``device`` (a resolved torch device) may use bf16: a CPU with AVX512-BF16 / AMX."""
    if device != "cpu":
        return False  # GPUs train in float32 (AMP off)
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def autocast(enabled: bool, device: str = "cpu") -> Any:
    """``torch.autocast`` to bf16 on ``device`` when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast(device, dtype=torch.bfloat16, enabled=enabled)
