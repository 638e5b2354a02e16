"""Process-wide performance settings that a program (not a library import) opts into."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
from dataclasses import dataclass
from typing import Literal

import torch

from stylenorm.errors import SpecError

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_cpu_allocator(keep_bytes: int = 1 << 30) -> bool:
    """Make glibc keep freed large blocks instead of returning them to the OS.

    By default glibc serves every allocation over 32 MiB with a fresh ``mmap``
    and unmaps it on free, so each layer output of that size pays page faults
    again: on the 2-core CPU here that is ~7 ms of the ~9 ms a (8, 64, 128, 128)
    instance norm takes. Raising the mmap and trim thresholds lets freed blocks
    be reused (what jemalloc/tcmalloc give PyTorch on CPU), at the price of the
    process keeping its peak memory. Returns False where glibc is not present.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, int(keep_bytes)) == 1
    ok = mallopt(_M_TRIM_THRESHOLD, int(2 * keep_bytes)) == 1 and ok
    if not ok:
        log.warning("mallopt refused the allocator settings; continuing with defaults")
    return ok


def resolve_device(name: str | None) -> str:
    """A command's --device: None picks CUDA when present, else CPU; asking for absent CUDA is an error."""
    if name is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SpecError(f"--device {name} was asked for, but no CUDA device is available; use --device cpu")
    return name


# ----------------------------------------------------------------------------- the inference path

Precision = Literal["auto", "float32", "bfloat16", "float16"]
MemoryFormat = Literal["auto", "channels_last", "contiguous"]


def native_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN: AVX512_BF16 or AMX).

    Without it torch emulates them: on an AVX2-only EPYC a TransformerNet pass in bf16 took ~100×
    its float32 time (bench/e2e.py), so bf16 is only ever chosen where this is True.
    """
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or a CPU-less build
        return False


@dataclass(frozen=True)
class InferencePath:
    """How models run on a device: an autocast dtype (None: float32) and the memory format."""

    dtype: torch.dtype | None
    channels_last: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        """The autocast region of this path (none for float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device.type, dtype=self.dtype)

    def describe(self) -> str:
        dtype = "float32" if self.dtype is None else str(self.dtype).removeprefix("torch.")
        return f"{dtype}, {'channels_last' if self.channels_last else 'contiguous'}"


def inference_path(
    device: str | torch.device, precision: Precision = "auto", memory_format: MemoryFormat = "auto"
) -> InferencePath:
    """The fastest safe path for ``device``, or what the settings force.

    ``auto`` precision: float16 autocast on CUDA; bfloat16 on a CPU with native bf16
    (:func:`native_bf16`); float32 otherwise. ``auto`` memory format: channels_last (measured faster
    on this project's nets on CPU, 0.79-0.89× the contiguous time at 1024², and on CUDA).
    """
    device = torch.device(device)
    if precision == "auto":
        dtype = torch.float16 if device.type == "cuda" else (torch.bfloat16 if native_bf16() else None)
    elif precision == "float32":
        dtype = None
    elif precision == "float16" and device.type != "cuda":
        raise SpecError("float16 inference needs a CUDA device (CPUs have no fast float16 arithmetic)")
    else:
        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float16
    channels_last = memory_format != "contiguous"
    return InferencePath(dtype, channels_last)
