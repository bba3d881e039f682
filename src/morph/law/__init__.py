"""Scaling-law stages: the law forms, their solvers and the fitting library; `morph laws` and `morph fit`."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ('fitting',)
