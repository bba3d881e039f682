"""The model: a Hugging Face LlamaForCausalLM built from a Shape (RMSNorm, SwiGLU, rotary)."""
from __future__ import annotations

from morph.core.shape import Shape


def build_model(shape: Shape, max_position_embeddings: int, eos_token_id: int | None, seed: int, device=None,
                dtype=None):
    """A freshly initialised model, built on `device` (default: CPU) in `dtype` (default: float32); the same seed
    gives the same weights on the same kind of device and dtype. Building on the GPU spares each training rank a
    host copy of the fp32 weights, and latency a 1B model's minute of single-threaded CPU initialisation."""
    import torch
    from transformers import LlamaForCausalLM

    device = torch.device(device or "cpu")
    config = shape.llama_config(max_position_embeddings, eos_token_id)
    # The weights are drawn from the device's global generator inside the constructor; fork it so
    # building a model neither depends on nor disturbs the caller's random state.
    default = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
        torch.manual_seed(seed)
        torch.set_default_dtype(dtype or torch.float32)  # the constructor makes and draws parameters in it
        try:
            model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(default)
    return model
