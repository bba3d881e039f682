"""The latency family's vocabulary: the timing backends and the fused attention kernels' head widths."""
BACKENDS = ("hf", "static", "graph", "vllm")

# The fused attention kernels (FlashAttention, PyTorch SDPA's flash kernel) take 16-bit heads up to 256 wide, in
# multiples of 8; a wider or unaligned head falls back to a slower kernel on a GPU.
FLASH_MAX_HEAD_DIM, FLASH_HEAD_DIM_MULTIPLE = 256, 8


def flash_head_dim_problem(head_dim: int) -> str | None:
    """Why a head of this width leaves the fused kernels, or None."""
    if head_dim > FLASH_MAX_HEAD_DIM:
        return f"head dim {head_dim} is over the fused attention kernels' limit of {FLASH_MAX_HEAD_DIM}"
    if head_dim % FLASH_HEAD_DIM_MULTIPLE:
        return (f"head dim {head_dim} is not a multiple of {FLASH_HEAD_DIM_MULTIPLE}, "
                "as the fused attention kernels need")
    return None
