"""The latency family's vocabulary, read by the experiment's validator without loading the backends."""
BACKENDS = ("hf", "static", "vllm")
