"""Model FLOPs utilisation: training FLOPs of a shape against the device's peak, labelled with where it came from:
the datasheet's dense peak for known GPUs, otherwise a matmul peak measured on this machine."""
from __future__ import annotations

import time

from morph.core.shape import Shape

# How Shape.forward_flops_per_token counts attention, stated beside every MFU.
ATTENTION_FLOPS = ("causal: QK^T and AV over the s/2 keys a query sees on average, 2*L*s*d_model FLOPs per token "
                   "forward; PaLM's 6N + 12*L*s*d counts the whole s x s square, twice this term")


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


# Dense (no sparsity) peak FLOP/s from NVIDIA's datasheets, per dtype (fp32 without TF32, torch's default for
# matmuls); the first name found in the device's wins, so the NVL and PCIe cards come before the SXM ones.
DATASHEET_PEAKS = (
    ("H100 PCIe", {"bfloat16": 756e12, "float16": 756e12, "float32": 51e12}),
    ("H100 NVL", {"bfloat16": 835e12, "float16": 835e12, "float32": 60e12}),
    ("H200 NVL", {"bfloat16": 835e12, "float16": 835e12, "float32": 60e12}),
    ("H100", {"bfloat16": 989e12, "float16": 989e12, "float32": 67e12}),  # SXM
    ("H200", {"bfloat16": 989e12, "float16": 989e12, "float32": 67e12}),  # SXM
    ("A100", {"bfloat16": 312e12, "float16": 312e12, "float32": 19.5e12}),
)

# The dtype a Lightning precision string runs its matmuls in.
PRECISION_DTYPES = {"bf16-mixed": "bfloat16", "bf16-true": "bfloat16", "16-mixed": "float16",
                    "16-true": "float16", "32-true": "float32"}


def device_peak(device: str, precision: str) -> dict:
    """{"flops", "dtype", "precision", "source"}: a known GPU's datasheet peak in the dtype the precision computes
    in, else a matmul peak measured here; on a GPU a large matmul, as a small one leaves it underused."""
    import torch

    dtype = PRECISION_DTYPES[precision]
    label = {"dtype": dtype, "precision": precision}
    if device.startswith("cuda"):
        name = torch.cuda.get_device_name()
        for known, peaks in DATASHEET_PEAKS:
            if known in name:
                return {"flops": peaks[dtype], **label, "source": f"datasheet dense peak, {name}"}
        n = 8192
        return {"flops": matmul_peak_flops(device, dtype, n), **label,
                "source": f"measured {n}x{n} matmul peak, {name}"}
    n = 1024
    return {"flops": matmul_peak_flops(device, dtype, n), **label,
            "source": f"measured {n}x{n} matmul peak, {device}, {torch.get_num_threads()} threads"}


def mfu(tokens_per_s: float, shape: Shape, seq_len: int, peak_flops: float) -> float:
    return tokens_per_s * train_flops_per_token(shape, seq_len) / peak_flops
