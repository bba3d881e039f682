"""The CLI's commands: each names the module that runs it. The pipeline table derives each
stage's code from its entry module here."""

# subcommand -> module exposing add_arguments(parser) and run(args)
COMMANDS = {
    "grid": "morph.workflow.grid_cli",
    "sample": "morph.data.sample",
    "tokenizer": "morph.data.tokenizer",
    "tokenize-shard": "morph.data.tokenize_shard",
    "tokenize-gather": "morph.data.tokenize_gather",
    "tokenize": "morph.data.tokenize",
    "train": "morph.train.run",
    "collect": "morph.train.collect",
    "latency": "morph.latency.measure",
    "latency-collect": "morph.latency.collect",
    "fit": "morph.law.fit_cli",
    "laws": "morph.law.laws",
    "candidates": "morph.select.candidates",
    "select": "morph.select.rank",
    "evaluate": "morph.evaluate.score",
    "report": "morph.report.write",
    "dvc-yaml": "morph.workflow.dvc_yaml",
    "lineage": "morph.workflow.lineage",
}
