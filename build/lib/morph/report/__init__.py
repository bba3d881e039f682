"""Report stage: the decision, its evidence, and the figures for people."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ()
