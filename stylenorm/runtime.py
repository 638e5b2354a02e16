"""Process-wide performance settings that a program (not a library import) opts into."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

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
