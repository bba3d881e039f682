"""Training stages: pre-train one model per run, and collect the runs' metrics."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ('card',)
