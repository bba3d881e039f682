"""Latency stages: time generation per shape, then tabulate and model the timings."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ('cost_model', 'table')
