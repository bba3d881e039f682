# One rule per row of the stage table (src/morph/workflow/pipeline.py, STAGES), in graph order. The row
# gives the command, inputs, outputs and params; this loop adds threads, resources, logs and benchmarks.
# `snakemake --list-rules` lists them; `snakemake -n -p <target>` prints each job's command.
RANKS = pipeline.train_ranks(CFG)  # how a training job's ranks start: train.devices x train.num_nodes


def node_of(stage):
    """The stage's node for a job's wildcards (its only node, for a singleton)."""
    wildcard = stage.wildcard[0]
    return lambda wc: stage.node(CFG, PARAMS, wc[wildcard] if wildcard else "")


for stage in pipeline.STAGES:
    key, pattern = stage.wildcard
    # Keyed stages declare their outputs with the wildcard itself as the key ("{run_id}").
    template = stage.node(CFG, PARAMS, f"{{{key}}}" if key else "")
    suffix = f"/{{{key}}}" if key else ""
    rule:
        name: stage.name
        input: (lambda node: lambda wc: node(wc).deps)(node_of(stage))
        output: outputs(template)
        params:
            cmd=(lambda node: lambda wc: node(wc).cmd)(node_of(stage)),
            cfg=(lambda node: lambda wc: sliced_params(node(wc)))(node_of(stage)),
            launch=RANKS.launch if stage.ranks else "",
        threads: stage.threads(CFG)
        resources:
            # A timing job takes the whole pool: nothing trains or times beside it.
            machine=MACHINE if stage.exclusive else 1,
            **(RANKS.resources if stage.ranks else {}),
        wildcard_constraints: **({key: pattern} if key else {})
        log: f"logs/{stage.name}{suffix}.log"
        benchmark: f"logs/benchmarks/{stage.name}{suffix}.tsv"
        shell: "{params.launch}{params.cmd} > {log} 2>&1"
