"""Model FLOPs utilisation: training FLOPs of a shape against the device's peak, labelled with where it came from:
the datasheet's dense peak for known GPUs, otherwise a matmul peak measured on this machine."""
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


# Dense (no sparsity) peak FLOP/s from NVIDIA's datasheets, per dtype; the first name found in the device's wins.
DATASHEET_PEAKS = (
    ("H100 PCIe", {"bfloat16": 756e12, "float32": 51e12}),
    ("H100", {"bfloat16": 989e12, "float32": 67e12}),  # SXM
    ("H200", {"bfloat16": 989e12, "float32": 67e12}),
    ("A100", {"bfloat16": 312e12, "float32": 19.5e12}),
)


def device_peak(device: str, dtype: str) -> dict:
    """{"flops", "dtype", "source"}: a known GPU's datasheet peak, else the measured matmul peak."""
    import torch

    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        for known, peaks in DATASHEET_PEAKS:
            if known in name:
                return {"flops": peaks[dtype], "dtype": dtype, "source": f"datasheet dense peak, {name}"}
    n = 1024
    return {"flops": matmul_peak_flops(device, dtype, n), "dtype": dtype,
            "source": f"measured {n}x{n} matmul peak, {device}, {torch.get_num_threads()} threads"}


def mfu(tokens_per_s: float, shape: Shape, seq_len: int, peak_flops: float) -> float:
    return tokens_per_s * train_flops_per_token(shape, seq_len) / peak_flops
