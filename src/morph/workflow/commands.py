"""The CLI's commands: each names the module that runs it. The graph's stages come from the stage table;
the rest are tools around it."""
from morph.workflow.pipeline import STAGES

# subcommand -> module exposing run(args); a tool's module also add_arguments(parser)
TOOLS = {
    "grid": "morph.workflow.grid_cli",  # what the experiment expands to
    "tokenize": "morph.data.tokenize",  # tokenize-shard and tokenize-gather in one process
    "fit": "morph.law.fit_cli",  # one law on any runs table
    "dvc-yaml": "morph.workflow.dvc_yaml",
    "dvc-exp": "morph.workflow.dvc_exp",  # dvc exp run -S, with dvc.yaml written for the varied graph
    "lineage": "morph.workflow.lineage",
}
COMMANDS = {**{s.command: s.module for s in STAGES}, **TOOLS}
INTERFACES = {s.command: s.interface for s in STAGES}  # a stage command's flags
