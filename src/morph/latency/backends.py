"""Generation backends that `morph latency` times: each generates exactly n new tokens, greedily.

- hf: plain `generate` with the default dynamic KV cache, as the paper timed it.
- static: `generate` with a static KV cache and a `torch.compile`d decode step
  (mode reduce-overhead on CUDA, i.e. CUDA graphs; inductor's default mode on CPU).
  Hugging Face compiles only the one-token decode step; the prefill runs eager.
- graph: our own greedy loop over a static KV cache, the whole decode step one CUDA graph (latency/graph.py).
- vllm: vLLM's offline engine on a CUDA device, fed token ids (no tokenizer).
"""
from __future__ import annotations

import importlib.util
import tempfile
from pathlib import Path

from morph.core.backends import BACKENDS
from morph.core.errors import MorphError


def _generation_config(new_tokens: int, **extra):
    from transformers import GenerationConfig

    # No EOS id at all, and min = max: generation can only stop after exactly new_tokens.
    return GenerationConfig(
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        num_beams=1,
        eos_token_id=None,
        pad_token_id=0,
        **extra,
    )


class HFBackend:
    name = "hf"
    warmup = 0  # calls per setting before the first sample, at least

    def __init__(self, model):
        self.model = model
        self._configs: dict[int, object] = {}

    def details(self) -> dict:
        return {"cache": "dynamic", "compiled": False, "attn_implementation": self.model.config._attn_implementation}

    def _config(self, new_tokens: int):
        if new_tokens not in self._configs:
            self._configs[new_tokens] = _generation_config(new_tokens, **self._extra())
        return self._configs[new_tokens]

    def _extra(self) -> dict:
        return {}

    def generate(self, prompt, new_tokens: int):
        import torch

        mask = torch.ones_like(prompt)
        return self.model.generate(prompt, attention_mask=mask, generation_config=self._config(new_tokens))

    def check_ready(self) -> None:
        """Called after warm-up: raise if the backend did not run the way it claims."""

    def check_timed(self) -> None:
        """Called after the timed samples: raise if they did work the warm-up should have done."""


class CompileEvents:
    """Counts what torch.compile starts as it starts it: compilations and CUDA graph recordings."""

    def __init__(self):
        from collections import Counter

        from torch._dynamo.callback import callback_handler

        self.counts = Counter()
        callback_handler.register_start_callback(self._seen)

    def _seen(self, args) -> None:
        self.counts[args.callback_trigger.name] += 1

    def snapshot(self) -> dict[str, int]:
        return {"compilations": self.counts["DYNAMO"], "cuda_graph_recordings": self.counts["CUDAGRAPH_RECORDING"]}


# StaticCache(config=..., max_cache_len=...) without a batch size or device is the API static uses (4.44's cache
# wanted both), and `generate` takes the cache as `cache` from 5.24 on, as `past_key_values` before (which 5.24+
# deprecates): both are tested (tests/test_latency.py, the oldest supported release and a GPU machine's 5.17).
STATIC_MIN_TRANSFORMERS = "4.57"
CACHE_KWARG_FROM = "5.24"


def _transformers_version():
    from importlib.metadata import version

    from packaging.version import Version

    return Version(version("transformers"))


def cache_kwarg() -> str:
    """The name under which this transformers' `generate` takes a ready-made KV cache."""
    from packaging.version import Version

    return "cache" if _transformers_version() >= Version(CACHE_KWARG_FROM) else "past_key_values"


class StaticBackend(HFBackend):
    """One static cache per batch size, made once and reset before each call: transformers would allocate a new
    one per `generate`, and the compiled decode step, guarded on the cache's tensors, would compile and record
    its CUDA graphs again inside timed samples whenever the batch size changed."""
    name = "static"

    def __init__(self, model, max_len: int):
        super().__init__(model)
        self.cuda = model.device.type == "cuda"
        # CUDA graph trees run a new graph once before recording it on the next call.
        self.warmup = 2 if self.cuda else 1
        self.max_len = max_len
        self._caches: dict[int, object] = {}
        self.events = CompileEvents()
        self.after_warmup: dict[str, int] | None = None

    def _compile_config(self):
        from transformers.generation.configuration_utils import CompileConfig

        # reduce-overhead captures CUDA graphs; on CPU there are none, so inductor's default mode.
        config = CompileConfig(fullgraph=True, dynamic=False, mode="reduce-overhead" if self.cuda else "default")
        if not self.cuda:
            # transformers auto-compiles only on accelerators unless told to compile on every device.
            config._compile_all_devices = True
        return config

    def _extra(self) -> dict:
        return {"compile_config": self._compile_config()}

    def generate(self, prompt, new_tokens: int):
        import torch
        from transformers import StaticCache

        batch = prompt.shape[0]
        cache = self._caches.get(batch)
        if cache is None:
            cache = self._caches[batch] = StaticCache(config=self.model.config, max_cache_len=self.max_len)
        else:
            cache.reset()  # zeroed in place: the same tensors, so the same compiled step and graphs
        mask = torch.ones_like(prompt)
        return self.model.generate(prompt, attention_mask=mask, generation_config=self._config(new_tokens),
                                   **{cache_kwarg(): cache})

    def details(self) -> dict:
        config = self._compile_config()
        return {
            "cache": "static, one per batch size, reset between calls",
            "compiled": True,
            "compile": {"mode": config.mode, "fullgraph": config.fullgraph, "dynamic": config.dynamic},
            "cuda_graphs": self.cuda,
            "compiled_steps": "decode (prefill runs eager)",
            "attn_implementation": self.model.config._attn_implementation,
            "warmup_events": self.after_warmup,
            "timed_events": {k: v - self.after_warmup[k] for k, v in self.events.snapshot().items()}
            if self.after_warmup else None,
        }

    def check_ready(self) -> None:
        # transformers keeps the compiled forward here once generate has used it; without it we would
        # be timing an eager static cache and calling it compiled.
        if getattr(self.model, "_compiled_call", None) is None:
            raise MorphError(
                "static backend: transformers did not compile the decode step during warm-up "
                "(its auto-compile rules may have changed); refusing to report eager timings as 'static'"
            )
        self.after_warmup = self.events.snapshot()
        if self.cuda and not self.after_warmup["cuda_graph_recordings"]:
            raise MorphError("static backend: no CUDA graph was recorded during warm-up; refusing to report "
                             "timings without graphs as 'static'")

    def check_timed(self) -> None:
        grown = {k: v - self.after_warmup[k] for k, v in self.events.snapshot().items() if v > self.after_warmup[k]}
        if grown:
            raise MorphError(
                "static backend: the timed samples compiled or recorded CUDA graphs again ("
                + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in grown.items())
                + "), so they are not graph replays; raise latency.warmup")


class VLLMBackend:
    name = "vllm"
    warmup = 0

    def __init__(self, model, max_len: int, seed: int):
        import torch
        from vllm import LLM

        self._dir = tempfile.TemporaryDirectory(prefix="morph-vllm-")
        model.save_pretrained(Path(self._dir.name))  # vLLM loads weights from disk; these are the same random ones
        dtype = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}[model.dtype]
        self.llm = LLM(model=self._dir.name, skip_tokenizer_init=True, dtype=dtype, seed=seed, max_model_len=max_len)
        self._version = importlib.import_module("vllm").__version__

    def details(self) -> dict:
        return {"engine": "vllm", "vllm": self._version, "cuda_graphs": True}

    def generate(self, prompt, new_tokens: int):
        import torch
        from vllm import SamplingParams

        params = SamplingParams(
            max_tokens=new_tokens, min_tokens=new_tokens, ignore_eos=True, temperature=0.0, detokenize=False
        )
        rows = prompt.tolist()
        outs = self.llm.generate([{"prompt_token_ids": r} for r in rows], params, use_tqdm=False)
        return torch.tensor([r + list(o.outputs[0].token_ids) for r, o in zip(rows, outs)])

    def check_ready(self) -> None:
        pass

    def check_timed(self) -> None:
        pass


def check_available(name: str, device: str) -> None:
    """Refuse a backend that cannot run here, before anything is measured."""
    if name not in BACKENDS:
        raise MorphError(f"latency.backends: unknown backend {name!r}; choose from {list(BACKENDS)}")
    if name == "static":
        from packaging.version import Version

        found = _transformers_version()
        if found < Version(STATIC_MIN_TRANSFORMERS):
            raise MorphError(
                f"static backend needs transformers>={STATIC_MIN_TRANSFORMERS} (its StaticCache API), this machine "
                f"has {found}; pip install 'transformers>={STATIC_MIN_TRANSFORMERS}' or remove 'static' from "
                "latency.backends")
    if name == "vllm":
        missing = []
        if device != "cuda":
            missing.append(f"latency.device is {device!r}")
        if importlib.util.find_spec("vllm") is None:
            missing.append("the vllm package is not installed")
        if missing:
            raise MorphError(
                "vllm backend needs a CUDA device and the vllm package; " + " and ".join(missing)
                + ". Remove 'vllm' from latency.backends or run on a GPU machine with vllm installed"
            )


def make(name: str, model, max_len: int, seed: int):
    check_available(name, model.device.type)
    if name == "hf":
        return HFBackend(model)
    if name == "static":
        return StaticBackend(model, max_len)
    if name == "graph":
        from morph.latency.graph import GraphBackend

        return GraphBackend(model, max_len)
    return VLLMBackend(model, max_len, seed)
