"""Names every family shares: the experiment file, the figures folder and the figure captions."""
from __future__ import annotations

PARAMS = "params.yaml"
PARAMS_FLAG = "--params"  # every command's experiment file: added once by the CLI, passed by the stage table
FIGURES = "results/figures"
CAPTIONS = "report/captions"  # <figure name>.rst: each figure's caption in `snakemake --report`


def figure(name: str, root: str = FIGURES) -> str:
    return f"{root}/{name}.png"
