"""The experiment and its graph: typed params, grid expansion, the pipeline table, dvc.yaml and lineage."""
# Modules other stage families may import; everything else here is this family's own.
PUBLIC = ('code_deps', 'experiment', 'grid', 'paths', 'schema')
