"""bf16 autocast for CPU training, only where the CPU multiplies bf16 natively.

On AVX512-BF16 / AMX CPUs autocast makes training faster (the intent model 1.5-2.5x; Whisper LoRA
1.2-1.4x, benchmarks/training_lanes.py); elsewhere bf16 is emulated and slower than float32, so it
stays off.
Weights and optimiser state stay float32 either way: autocast only lowers the matrix products.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 / AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_bf16", "amx_bf16"))


def autocast(enabled: bool) -> Any:
    """``torch.autocast`` to bf16 on the CPU when ``enabled`` (a no-op context otherwise)."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)
