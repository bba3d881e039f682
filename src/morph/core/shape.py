"""The model shape: the one definition that parameter counting, the model config,
latency and the scaling law's aspect ratio R all read."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from morph.core.errors import MorphError


def swiglu_ffn(d_model: int, multiple: int = 256) -> int:
    """open_lm's SwiGLU width: f = multiple * ceil(int(8d/3) / multiple)."""
    return multiple * math.ceil(int(8 * d_model / 3) / multiple)


class ShapeError(MorphError):
    """A shape that cannot be built; the message starts with the offending field."""


@dataclass(frozen=True)
class Shape:
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    ffn: int
    vocab_size: int
    tie_embeddings: bool = False
    # Grid knobs set away from the model defaults name themselves in the id; default shapes keep theirs.
    ffn_ratio: float | None = None  # the MLP-to-attention ratio ffn was set from; None: the SwiGLU default
    kv_knob: bool = False  # n_kv_heads came from a grid knob, not the model default

    def __post_init__(self):
        for name in ("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn", "vocab_size"):
            if getattr(self, name) < 1:
                raise ShapeError(f"{name}: {getattr(self, name)} must be a positive integer")
        if self.d_model % self.n_heads:
            raise ShapeError(f"d_model: {self.d_model} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ShapeError(f"n_kv_heads: {self.n_kv_heads} does not divide n_heads={self.n_heads}; "
                             f"use a divisor of {self.n_heads}")
        if self.ffn_ratio is not None and not self.ffn_ratio > 0:
            raise ShapeError(f"ffn_ratio: {self.ffn_ratio} must be above 0")
        if self.head_dim % 2:
            raise ShapeError(
                f"d_model: head dimension {self.d_model}/{self.n_heads}={self.head_dim} is odd; rotary needs it even"
            )

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def aspect_ratio(self) -> float:
        """R = d_model / n_layers, the inference-aware law's shape variable."""
        return self.d_model / self.n_layers

    @property
    def shape_id(self) -> str:
        return shape_id(self.d_model, self.n_layers, self.ffn_ratio, self.n_kv_heads if self.kv_knob else None)

    def attention_params(self) -> int:
        """One layer's q, o and (possibly grouped) k, v projections."""
        return attention_params(self.d_model, self.n_heads, self.n_kv_heads)

    @property
    def mlp_attention_ratio(self) -> float:
        """The SwiGLU MLP's parameters over attention's, per layer (Bian et al., 2025), as built."""
        return 3 * self.d_model * self.ffn / self.attention_params()

    def layer_params(self) -> int:
        return self.attention_params() + 3 * self.d_model * self.ffn + 2 * self.d_model  # + two RMSNorm gains

    def non_embedding_params(self) -> int:
        return self.n_layers * self.layer_params() + self.d_model  # + final norm

    def embedding_params(self) -> int:
        copies = 1 if self.tie_embeddings else 2
        return copies * self.vocab_size * self.d_model

    def params(self) -> int:
        """N as in the paper: every parameter, input embedding and output head included."""
        return self.embedding_params() + self.non_embedding_params()

    def forward_flops_per_token(self, seq_len: int) -> int:
        """Matmul FLOPs of one forward pass per token (2 per multiply-add), attention scores included."""
        return (2 * (self.non_embedding_params() + self.vocab_size * self.d_model)
                + 2 * self.n_layers * seq_len * self.d_model)

    def weight_bytes(self, bytes_per_param: int) -> int:
        return self.params() * bytes_per_param

    def kv_cache_bytes(self, tokens: int, batch: int, bytes_per_value: int) -> int:
        return 2 * self.n_layers * self.n_kv_heads * self.head_dim * tokens * batch * bytes_per_value

    def kv_cache_mib(self, batch: int, context: int, dtype: str) -> float:
        """The KV cache at this batch and context (prompt plus generated tokens), in MiB of `dtype`."""
        return self.kv_cache_bytes(context, batch, 4 if dtype == "float32" else 2) / 2**20

    def llama_config(self, max_position_embeddings: int, eos_token_id: int | None = None):
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.d_model,
            intermediate_size=self.ffn,
            num_hidden_layers=self.n_layers,
            num_attention_heads=self.n_heads,
            num_key_value_heads=self.n_kv_heads,
            max_position_embeddings=max_position_embeddings,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            tie_word_embeddings=self.tie_embeddings,
            attention_bias=False,
            mlp_bias=False,
            bos_token_id=eos_token_id,
            eos_token_id=eos_token_id,
            pad_token_id=eos_token_id,
        )

    @classmethod
    def from_dict(cls, d: dict) -> Shape:
        """Rebuild a Shape from to_dict() output (derived keys are ignored; absent knobs are the defaults)."""
        return cls(**{f: d[f] for f in cls.__dataclass_fields__ if f in d})

    def to_dict(self) -> dict:
        return asdict(self) | {
            "params": self.params(),
            "non_embedding_params": self.non_embedding_params(),
            "aspect_ratio": self.aspect_ratio,
            "mlp_attention_ratio": self.mlp_attention_ratio,
        }


def attention_params(d_model: int, n_heads: int, n_kv_heads: int) -> int:
    """q and o are d x d; k and v are d x (n_kv_heads x head_dim), grouped under GQA."""
    return 2 * d_model * d_model + 2 * d_model * n_kv_heads * (d_model // n_heads)


@dataclass(frozen=True)
class ShapeRules:
    """How a (d_model, n_layers) pair becomes a Shape; from params.yaml `model`."""

    vocab_size: int
    n_heads: int | None = None
    head_dim: int | None = None
    n_kv_heads: int | None = None
    ffn_multiple: int = 256
    tie_embeddings: bool = False
    max_head_dim: int | None = None  # with n_heads: wider heads get more of them (see heads_for)

    def heads_for(self, d_model: int) -> int:
        if self.n_heads is not None:
            if self.max_head_dim is None or d_model // self.n_heads <= self.max_head_dim:
                return self.n_heads
            # The fewest more heads that divide d_model into heads within the cap, in multiples of 8.
            for heads in range(self.n_heads + 1, d_model // 8 + 1):
                if d_model % heads == 0 and (d_model // heads) % 8 == 0 and d_model // heads <= self.max_head_dim:
                    return heads
            raise ShapeError(f"d_model: {d_model} has no head count above n_heads={self.n_heads} giving heads of at "
                             f"most max_head_dim={self.max_head_dim} in multiples of 8")
        if d_model % self.head_dim:
            raise ShapeError(f"d_model: {d_model} is not divisible by head_dim={self.head_dim}")
        return d_model // self.head_dim

    def build(self, d_model: int, n_layers: int, ffn_ratio: float | None = None,
              n_kv_heads: int | None = None) -> Shape:
        """The shape of this width and depth; a knob left None (or at the model default) is the default."""
        heads = self.heads_for(d_model)
        kv_default = self.n_kv_heads or heads
        kv = n_kv_heads or kv_default
        if ffn_ratio is None:
            ffn = swiglu_ffn(d_model, self.ffn_multiple)
        else:  # the nearest whole multiple of ffn_multiple, at least one
            mlp = ffn_ratio * attention_params(d_model, heads, kv) / (3 * d_model)
            ffn = self.ffn_multiple * max(1, round(mlp / self.ffn_multiple))
        return Shape(
            d_model=d_model,
            n_layers=n_layers,
            n_heads=heads,
            n_kv_heads=kv,
            ffn=ffn,
            vocab_size=self.vocab_size,
            tie_embeddings=self.tie_embeddings,
            ffn_ratio=ffn_ratio,
            kv_knob=kv != kv_default,
        )

    def width_step(self) -> int:
        """d_model must be a multiple of this (whole, even-sized heads)."""
        return 2 * self.n_heads if self.n_heads is not None else self.head_dim

    def propose(self, target_params: int, n_layers: int, ffn_ratio: float | None = None,
                n_kv_heads: int | None = None) -> Shape:
        """The shape of depth n_layers (and these knobs) whose N is closest to target_params."""
        step = self.width_step()
        best = None
        d = step
        while True:
            shape = self.build(d, n_layers, ffn_ratio, n_kv_heads)
            gap = abs(shape.params() - target_params)
            if best is None or gap < best[0]:
                best = (gap, shape)
            if shape.params() > target_params:
                return best[1]
            d += step


def format_tokens(tokens: int) -> str:
    """Compact exact token count: 2000000 -> '2M', 30000000000 -> '30G', 1234 -> '1234'."""
    for suffix, unit in (("G", 10**9), ("M", 10**6), ("k", 10**3)):
        if tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)


# What shape_id and run_id write, as the orchestrators' wildcards match it.
SHAPE_ID_PATTERN = r"d\d+-l\d+(?:-f[\d.]+)?(?:-kv\d+)?"
RUN_ID_PATTERN = SHAPE_ID_PATTERN + r"-[tD][^/]+"


def shape_id(d_model: int, n_layers: int, ffn_ratio: float | None = None, kv_heads: int | None = None) -> str:
    """d64-l2, with -f<ratio> and -kv<heads> for the knobs a grid set: d64-l2-f1.5-kv1."""
    ffn = f"-f{ffn_ratio:g}" if ffn_ratio is not None else ""
    kv = f"-kv{kv_heads}" if kv_heads is not None else ""
    return f"d{d_model}-l{n_layers}{ffn}{kv}"


def run_id(shape: Shape, multiplier: float | None = None, tokens: int | None = None) -> str:
    """Readable id: d256-l4-t20 for a tokens-per-parameter multiplier, d256-l4-D30G for a fixed budget."""
    if multiplier is not None:
        return f"{shape.shape_id}-t{multiplier:g}"
    return f"{shape.shape_id}-D{format_tokens(int(tokens))}"
