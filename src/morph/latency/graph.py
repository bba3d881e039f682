"""The `graph` backend: our own greedy loop over a static KV cache, the whole decode step one CUDA graph.

Plain `generate` spends milliseconds of Python and launches per token; at batch 1 a decode step should cost what
reading the weights costs. Here the model's own modules (embedding, norms, projections, MLP, rotary tables,
head) do the arithmetic; what is ours is the cache, the attention over it and the loop:
- prefill runs eager over the prompt and writes its keys and values into the cache;
- a decode step embeds the last token, writes its key and value at the position held in a device tensor,
  attends over the whole cache with the positions not yet written masked out, and takes the argmax into the
  output buffer, all on device: no shape changes with the position, so one CUDA graph replays every step;
- on CPU the same step runs eagerly (there are no graphs to capture).
"""
from __future__ import annotations

from morph.core.errors import MorphError


def _rotate_half(x):
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x, cos, sin):
    """Rotary positions on [batch, heads, tokens, head_dim], with cos and sin of [batch, tokens, head_dim]."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + _rotate_half(x) * sin


class _Decoder:
    """One batch size's cache, buffers and (on CUDA) captured decode step."""

    def __init__(self, model, batch: int, max_len: int):
        import torch

        cfg, device, dtype = model.config, model.device, model.dtype
        self.model, self.batch, self.max_len = model, batch, max_len
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        shape = (batch, self.kv_heads, max_len, self.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in model.model.layers]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in model.model.layers]
        # The step's inputs and outputs live in fixed tensors, so a replayed graph reads and writes them.
        self.token = torch.zeros(batch, 1, dtype=torch.long, device=device)
        self.pos = torch.zeros(1, dtype=torch.long, device=device)  # the cache slot the next token goes to
        self.col = torch.zeros(1, dtype=torch.long, device=device)  # the output column the next token goes to
        self.out = torch.zeros(batch, max_len, dtype=torch.long, device=device)
        self.slots = torch.arange(max_len, device=device)
        self.graph = None

    def _layers(self, x, positions, write, mask, causal: bool):
        """The decoder stack on hidden states x [batch, tokens, d]: keys and values written by `write`, attention
        over the cache up to the last slot `mask` lets through (or causal within the tokens when mask is None)."""
        import torch
        import torch.nn.functional as F

        m = self.model.model
        cos, sin = m.rotary_emb(x, positions)
        b, n = x.shape[:2]
        for i, layer in enumerate(m.layers):
            attn, h = layer.self_attn, layer.input_layernorm(x)
            q = attn.q_proj(h).view(b, n, self.heads, self.head_dim).transpose(1, 2)
            k = attn.k_proj(h).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
            v = attn.v_proj(h).view(b, n, self.kv_heads, self.head_dim).transpose(1, 2)
            q, k = _rope(q, cos, sin), _rope(k, cos, sin)
            write(self.keys[i], k)
            write(self.values[i], v)
            if mask is None:
                keys, values = k, v
            else:
                keys, values = self.keys[i], self.values[i]
            groups = self.heads // self.kv_heads  # grouped-query attention: each kv head serves `groups` heads
            if groups > 1:  # a copy of the whole cache a layer: only where the heads need it
                keys, values = keys.repeat_interleave(groups, dim=1), values.repeat_interleave(groups, dim=1)
            y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, is_causal=causal,
                                               scale=attn.scaling)
            x = x + attn.o_proj(y.transpose(1, 2).reshape(b, n, -1))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        return torch.argmax(self.model.lm_head(m.norm(x[:, -1:])).float(), dim=-1)

    def prefill(self, prompt) -> None:
        import torch

        n = prompt.shape[1]
        positions = torch.arange(n, device=prompt.device).expand(self.batch, n)

        def write(cache, new):
            cache[:, :, :n] = new

        x = self.model.model.embed_tokens(prompt)
        self.token.copy_(self._layers(x, positions, write, None, causal=n > 1))
        self.out[:, :1] = self.token
        self.pos.fill_(n)
        self.col.fill_(1)

    def step(self) -> None:
        """One token: everything on device tensors, so it can be captured once and replayed."""
        def write(cache, new):
            cache.index_copy_(2, self.pos, new)

        x = self.model.model.embed_tokens(self.token)
        mask = (self.slots <= self.pos).view(1, 1, 1, self.max_len)
        positions = self.pos.view(1, 1).expand(self.batch, 1)
        self.token.copy_(self._layers(x, positions, write, mask, causal=False))
        self.out.index_copy_(1, self.col, self.token)
        self.pos.add_(1)
        self.col.add_(1)

    def capture(self) -> None:
        """Record the decode step as one CUDA graph, warmed up on a side stream first as capture requires. The
        warm-up writes the cache's last slot and output column, which every call writes before it reads them."""
        import torch

        def park():
            self.pos.fill_(self.max_len - 1)
            self.col.fill_(self.max_len - 1)

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                park()
                self.step()
        torch.cuda.current_stream().wait_stream(side)
        park()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.step()

    def generate(self, prompt, new_tokens: int):
        import torch

        if prompt.shape[1] + new_tokens > self.max_len:
            raise MorphError(f"graph backend: {prompt.shape[1]} prompt + {new_tokens} new tokens exceed its cache "
                             f"of {self.max_len}")
        if self.graph is None and self.model.device.type == "cuda":
            self.capture()
        self.prefill(prompt)
        for _ in range(new_tokens - 1):
            if self.graph is None:
                self.step()
            else:
                self.graph.replay()
        return torch.cat([prompt, self.out[:, :new_tokens]], dim=1)


class GraphBackend:
    name = "graph"

    def __init__(self, model, max_len: int):
        self.model, self.max_len = model, max_len
        self.cuda = model.device.type == "cuda"
        self.warmup = 1  # the first call per batch size captures its graph
        self._decoders: dict[int, _Decoder] = {}
        self._ready: int | None = None

    def generate(self, prompt, new_tokens: int):
        batch = prompt.shape[0]
        if batch not in self._decoders:
            self._decoders[batch] = _Decoder(self.model, batch, self.max_len)
        return self._decoders[batch].generate(prompt, new_tokens)

    def details(self) -> dict:
        return {"cache": "static, one per batch size, attended whole under a position mask",
                "loop": "own greedy loop (morph.latency.graph)", "compiled": False, "cuda_graphs": self.cuda,
                "captured": "the whole decode step, one graph per batch size" if self.cuda else None,
                "graphs": len(self._decoders) if self.cuda else 0}

    def check_ready(self) -> None:
        if self.cuda and any(d.graph is None for d in self._decoders.values()):
            raise MorphError("graph backend: a batch size's decode step was not captured during warm-up; refusing "
                             "to report eager timings as 'graph'")
        self._ready = len(self._decoders)

    def check_timed(self) -> None:
        if len(self._decoders) != self._ready:
            raise MorphError("graph backend: a batch size first seen in the timed samples made its cache and "
                             "captured its graph there; every setting must run in warm-up")
