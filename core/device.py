"""Where models run: ``compute.device`` (auto | cpu | cuda) resolved in one place, for torch and for CTranslate2.

Training runs on torch and transcription on CTranslate2 (faster-whisper), and each finds a GPU on its
own: a CPU build of torch beside a CUDA-capable CTranslate2 wheel is common, and so is the reverse.
So each library is asked separately. ``auto`` takes the GPU when that library sees one, else the
CPU. ``cuda`` must get a GPU, and stops with :class:`DeviceUnavailable` when there is none; the
message says what was checked and how to fix it. ``cpu`` never imports either library.

Callers resolve the setting once where they read settings and pass the resolved ``"cpu"`` or
``"cuda"`` down. Training functions take torch's device, and engines take CTranslate2's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

DeviceSetting = Literal["auto", "cpu", "cuda"]
Device = Literal["cpu", "cuda"]

# CTranslate2's compute type on each device. int8 on the CPU is what serving has always run, and it
# is the export's own type. On a GPU the int8 weights are converted to float16 on load, which the
# GPU's tensor cores multiply natively.
CT2_COMPUTE_TYPES: dict[Device, str] = {"cpu": "int8", "cuda": "float16"}
CUDA_INDEX_URL = "https://download.pytorch.org/whl/cu128"  # a CUDA 12 wheel index, as CTranslate2 is built on CUDA 12
_USE_CPU = "or set compute.device: cpu (VOICELOOP__COMPUTE__DEVICE=cpu) to run on the CPU"


class DeviceUnavailable(RuntimeError):
    """``cuda`` was asked for and is not there; the message says what was checked and how to fix it."""


@dataclass(frozen=True)
class Ct2Device:
    """Where CTranslate2 runs a Whisper model: the device and the compute type to load it with."""

    device: Device
    compute_type: str


def check_setting(setting: str) -> DeviceSetting:
    """``setting`` if it is auto, cpu or cuda; a ValueError naming the choices otherwise."""
    if setting not in get_args(DeviceSetting):
        raise ValueError(f"device must be one of {', '.join(get_args(DeviceSetting))}, got {setting!r}")
    return setting  # type: ignore[return-value]


def visible_devices() -> str:
    """What ``CUDA_VISIBLE_DEVICES`` says, for messages ("" or -1 hides every GPU)."""
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return "CUDA_VISIBLE_DEVICES is not set"
    hidden = value.strip() in ("", "-1")
    return f"CUDA_VISIBLE_DEVICES={value!r}" + (" hides every GPU" if hidden else "")


def torch_cuda_problem() -> str | None:
    """Why torch cannot train on a GPU here, or None when it can."""
    import torch

    version = torch.__version__.split("+")[0]
    if not torch.backends.cuda.is_built():
        return (f"torch {torch.__version__} is built without CUDA: install a CUDA build of the same version "
                f"(pip install torch=={version} --index-url {CUDA_INDEX_URL}; docs/asr.md#gpu)")
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU ({visible_devices()}): "
                "check the NVIDIA driver (nvidia-smi) and CUDA_VISIBLE_DEVICES")
    return None


def ct2_cuda_problem() -> str | None:
    """Why CTranslate2 cannot transcribe on a GPU here, or None when it can."""
    import ctranslate2

    if ctranslate2.get_cuda_device_count() == 0:
        return (f"CTranslate2 {ctranslate2.__version__} sees no GPU (get_cuda_device_count() is 0; "
                f"{visible_devices()}): it needs an NVIDIA driver and CUDA 12 (libcublas.so.12; older CTranslate2 "
                "builds also cuDNN 9); check nvidia-smi and CUDA_VISIBLE_DEVICES (docs/asr.md#gpu)")
    return None


def _resolve(setting: str, library: str, problem: Callable[[], str | None]) -> Device:
    if check_setting(setting) == "cpu":
        return "cpu"
    why = problem()
    if why is None:
        return "cuda"
    if setting == "cuda":
        raise DeviceUnavailable(f"compute.device is cuda but {library} cannot use a GPU. {why}; {_USE_CPU}")
    return "cpu"


def resolve_device(setting: str) -> Device:
    """torch's device for ``setting``: ``auto`` gives cuda when torch sees a GPU, else cpu.

    ``cuda`` without a usable GPU raises :class:`DeviceUnavailable`. Resolved values pass through,
    so a function handed a device may resolve it again.
    """
    return _resolve(setting, "torch", torch_cuda_problem)


def ct2_compute_type(device: Device) -> str:
    """CTranslate2's compute type for a resolved device: int8 on the CPU, float16 on a GPU."""
    return CT2_COMPUTE_TYPES[device]


def ct2_device(setting: str, compute_type: str | None = None) -> Ct2Device:
    """CTranslate2's device for ``setting`` (resolved as :func:`resolve_device`, asking CTranslate2) and
    ``compute_type``: given, or that device's own (:data:`CT2_COMPUTE_TYPES`)."""
    device = _resolve(setting, "CTranslate2", ct2_cuda_problem)
    return Ct2Device(device, compute_type or ct2_compute_type(device))
