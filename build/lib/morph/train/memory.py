"""Keep the memory a training step frees for the next step instead of handing it back to the kernel.

glibc's malloc returns large freed blocks to the kernel (munmap, or a trim of the heap's top), and the next
step faults the same pages in again, zeroed by the kernel: on CPU at the toy shapes that was thousands of
page faults and a fifth of a step's CPU time. Every step allocates the same tensors, so the process keeps
what it freed (its peak stays what the first step reached). No number changes: torch aligns each tensor's
data itself, wherever malloc places it.
"""
from __future__ import annotations

import ctypes

# mallopt's parameter names (malloc.h) and the largest value its int argument takes.
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
INT_MAX = 2 ** (8 * ctypes.sizeof(ctypes.c_int) - 1) - 1


def keep_freed_memory() -> None:
    """On glibc: every block from the heap, which is never trimmed. Elsewhere nothing."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is not None:
        mallopt(M_MMAP_MAX, 0)
        mallopt(M_TRIM_THRESHOLD, INT_MAX)
