"""morph: choose an inference-efficient model shape before spending the pre-training budget."""

__version__ = "0.1.0"
