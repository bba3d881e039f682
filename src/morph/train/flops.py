"""Model FLOPs utilisation: training FLOPs of a shape against a matmul peak measured on this machine."""
from __future__ import annotations

import time

from morph.shape import Shape


def train_flops_per_token(shape: Shape, seq_len: int) -> int:
    """Forward plus backward (twice the forward) matmul FLOPs per trained token."""
    return 3 * shape.forward_flops_per_token(seq_len)


def matmul_peak_flops(device: str = "cpu", dtype: str = "float32", n: int = 1024, seconds: float = 0.5) -> float:
    """FLOP/s of the fastest n x n matmul over about `seconds`, with the current thread setting.

    The fastest, not the mean: on a shared machine the mean measures the neighbours, not the hardware.
    """
    import torch

    dt = getattr(torch, dtype)
    a = torch.randn(n, n, device=device, dtype=dt)
    b = torch.randn(n, n, device=device, dtype=dt)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    torch.mm(a, b)  # warm-up: thread pool and kernel selection
    sync()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def mfu(tokens_per_s: float, shape: Shape, seq_len: int, peak_flops: float) -> float:
    return tokens_per_s * train_flops_per_token(shape, seq_len) / peak_flops
