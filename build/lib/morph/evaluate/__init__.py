"""Evaluation stage: zero-shot scores with lm-evaluation-harness on the shipped task data."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ()
