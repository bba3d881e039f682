"""Where a run's ranks go (Lightning accelerator, precision and strategy) and what is refused by name before
anything trains: a strategy or precision Lightning cannot run there, more devices than the machine has, and a
micro batch whose training state would not fit a device's memory."""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

from morph.core.errors import MorphError
from morph.core.shape import Shape
from morph.core.train import Train

GIB = 2**30


@dataclass(frozen=True)
class Launch:
    accelerator: str  # cpu | gpu
    precision: str
    strategy: str  # Lightning's strategy name


@dataclass(frozen=True)
class Machine:
    devices: int  # on this node
    kind: str  # what a device is here, for messages
    memory: int | None  # bytes per device, where known
    ranks_started_outside: bool  # by srun or torchrun: they count and place the ranks, not morph


def resolve(t: Train, cuda_available: bool) -> Launch:
    accelerator = t.accelerator if t.accelerator != "auto" else ("gpu" if cuda_available else "cpu")
    precision = t.precision if t.precision != "auto" else ("bf16-mixed" if accelerator == "gpu" else "32-true")
    strategy = t.strategy if t.strategy != "auto" or t.world_size == 1 else "ddp"
    return Launch(accelerator, precision, strategy)


def lightning_strategy(launch: Launch):
    """The strategy handed to Lightning. Under DDP each gradient is a view into its all-reduce bucket: the same
    numbers with one copy fewer each way a step and the gradients held once (4-8% of a 2-rank CPU step at d128).
    Under FSDP see `fsdp_strategy`."""
    if launch.strategy == "fsdp":
        return fsdp_strategy()
    if launch.strategy != "ddp":
        return launch.strategy
    from lightning.pytorch.strategies import DDPStrategy

    return DDPStrategy(gradient_as_bucket_view=True)


def fsdp_strategy():
    """FSDP sharded per decoder layer (the embedding and head stay in the root unit), so a rank holds one layer's
    gathered weights at a time and the training state really splits over the ranks. FSDP's own mixed precision
    is kept at fp32 for parameters, gradient reduction and buffers: Lightning's bf16 default would reduce
    gradients and cast the rotary inv_freq buffer in bf16. Autocast alone computes in bf16, as on one device."""
    import torch
    from lightning.pytorch.strategies import FSDPStrategy
    from torch.distributed.fsdp import MixedPrecision
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer

    fp32 = torch.float32
    return FSDPStrategy(auto_wrap_policy={LlamaDecoderLayer}, use_orig_params=True,
                        mixed_precision=MixedPrecision(param_dtype=fp32, reduce_dtype=fp32, buffer_dtype=fp32))


def _started_by() -> str | None:
    """"slurm" or "torchrun" where they started this process as one of the ranks; None where morph starts them."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    return "slurm" if SLURMEnvironment.detect() else "torchrun" if TorchElasticEnvironment.detect() else None


def global_rank(devices_per_node: int) -> int:
    """This process's rank, read from its environment as Lightning will read it: srun's, torchrun's, or for
    ranks Lightning starts itself NODE_RANK and LOCAL_RANK; 0 for the process that starts the others."""
    started_by = _started_by()
    if started_by == "slurm":
        return int(os.environ["SLURM_PROCID"])
    if started_by == "torchrun":
        return int(os.environ["RANK"])
    return int(os.environ.get("NODE_RANK", 0)) * devices_per_node + int(os.environ.get("LOCAL_RANK", 0))


def local_rank(devices_per_node: int) -> int:
    """This process's rank on its node, which is its device's index there; read as `global_rank` reads the rank."""
    started_by = _started_by()
    if started_by == "slurm":
        return int(os.environ["SLURM_LOCALID"])
    if started_by == "torchrun":
        return int(os.environ["LOCAL_RANK"])
    return global_rank(devices_per_node) % devices_per_node


def this_machine(accelerator: str) -> Machine:
    import torch

    outside = _started_by() is not None
    if accelerator == "gpu":
        count = torch.cuda.device_count()
        memory = torch.cuda.get_device_properties(0).total_memory if count else None
        return Machine(count, "CUDA GPUs", memory, outside)
    return Machine(len(os.sched_getaffinity(0)), "CPU cores", None, outside)


def activation_bytes(shape: Shape, tokens: int, precision: str) -> int:
    """What autograd keeps for the backward pass of a micro batch of `tokens` tokens: the Hugging Face Llama with
    fused (SDPA) attention and no recomputation, counted tensor by tensor from what it saves. Per layer and token:
    two RMSNorms each keep their fp32 input and normalised value (8 d bytes) and a 4-byte rsqrt, whatever the
    precision, since the residual stream stays fp32; the projections' inputs take 12 d bytes either way (under
    autocast q, k, v, o, gate and up each keep a 16-bit copy, in fp32 q/k/v and gate/up share theirs); attention
    keeps q, k, v and a fp32 log-sum-exp per head; the SwiGLU MLP keeps four ffn-wide values. Then the final norm,
    the head's input and the fp32 log-softmax over the vocabulary, and the int64 targets."""
    value = 4 if precision == "32-true" else 2
    d, f = shape.d_model, shape.ffn
    layer = 2 * (8 * d + 4) + 12 * d + 3 * value * d + 4 * shape.n_heads + 4 * value * f
    head = 8 * d + 4 + value * d + 4 * shape.vocab_size + 8
    return tokens * (shape.n_layers * layer + head)


def train_bytes_per_device(shape: Shape, seq_len: int, t: Train, launch: Launch) -> int:
    """An estimate of one rank's peak training memory: fp32 weights, gradients and AdamW moments (sharded over
    the ranks under fsdp), the 16-bit weight copies autocast keeps for the backward pass, the micro batch's saved
    activations (`activation_bytes`) and, at the start of the backward pass, the logits' gradient in fp32 and
    the compute precision. The allocator's fragmentation and the CUDA context come on top."""
    states = shape.params() * (4 + 4 + 8)
    if launch.strategy == "fsdp":
        states //= t.world_size
    value = 4 if launch.precision == "32-true" else 2
    copies = 0 if value == 4 else value * shape.params()
    tokens = t.micro_batch * seq_len
    logits_grad = tokens * shape.vocab_size * (4 + value)
    return states + copies + activation_bytes(shape, tokens, launch.precision) + logits_grad


def check(t: Train, launch: Launch, machine: Machine, shape: Shape, seq_len: int) -> None:
    """Refuse, naming the setting, what Lightning or the machine would stop only after training started."""
    on_cpu = launch.accelerator == "cpu"
    if t.logger == "tensorboard" and not any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX")):
        raise MorphError("train.logger: tensorboard needs the tensorboard package; "
                         "pip install 'morph[tensorboard]', or set train.logger: csv")
    if launch.strategy == "fsdp" and on_cpu:
        raise MorphError("train.strategy: fsdp needs train.accelerator gpu (Lightning's FSDP does not run on CPU "
                         "processes); use strategy ddp on CPU")
    if launch.precision == "16-mixed" and on_cpu:
        raise MorphError("train.precision: 16-mixed needs a GPU; use bf16-mixed or 32-true on CPU")
    if launch.accelerator == "gpu" and machine.devices == 0:
        raise MorphError("train.accelerator: gpu, but torch sees no CUDA device here; use cpu or auto")
    if not machine.ranks_started_outside and t.devices > machine.devices:
        raise MorphError(f"train.devices: {t.devices} per node, but this machine has {machine.devices} "
                         f"{machine.kind}; lower train.devices (and raise train.num_nodes under SLURM)")
    if machine.memory is not None:
        need = train_bytes_per_device(shape, seq_len, t, launch)
        if need > machine.memory:
            raise MorphError(
                f"train.micro_batch_size: {shape.shape_id} needs about {need / GIB:.1f} GiB per device at a micro "
                f"batch of {t.micro_batch} x model.seq_len {seq_len} ({launch.strategy}, {launch.precision}), more "
                f"than the device's {machine.memory / GIB:.1f} GiB; lower train.micro_batch_size, or use fsdp")
