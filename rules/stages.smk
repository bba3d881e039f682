# One rule per row of the stage table (src/morph/workflow/pipeline.py, STAGES), in graph order. The row
# gives the command, inputs, outputs and params; this loop adds threads, resources, logs and benchmarks.
# `snakemake --list-rules` lists them; `snakemake -n -p <target>` prints each job's command.
RANKS = pipeline.train_ranks(CFG)  # how a training job's ranks start: train.devices x train.num_nodes


def node_of(stage, params=PARAMS):
    """The stage's node for a job's wildcards (its only node, for a singleton)."""
    wildcard = stage.wildcard[0]
    return lambda wc: stage.node(CFG, params, wc[wildcard] if wildcard else "")


@functools.cache
def folder_records():
    return pipeline.folder_records(pipeline.all_nodes(CFG, PARAMS))  # on first use: a second for the paper's grid


def inputs(node):
    """A node's inputs; a folder it reads with a file written beside it is judged through that file (ancient)."""
    deps = set(node.deps)
    return [ancient(d) if folder_records().get(d, frozenset()) & deps else d for d in node.deps]


for stage in pipeline.STAGES:
    key, pattern = stage.wildcard
    # Keyed stages declare their outputs with the wildcard itself as the key ("{run_id}").
    template = stage.node(CFG, PARAMS, f"{{{key}}}" if key else "")
    suffix = f"/{{{key}}}" if key else ""
    rule:
        name: stage.name
        input: (lambda node: lambda wc: inputs(node(wc)))(node_of(stage))
        output: outputs(template)
        params:
            # The command runs with the experiment file's name but is recorded without it (Unrecorded): a copy
            # of the file under another name reruns nothing; its content reaches the trigger through cfg.
            cmd=(lambda node: lambda wc: Unrecorded(node(wc).cmd))(node_of(stage)),
            recorded_cmd=(lambda node: lambda wc: node(wc).cmd)(node_of(stage, EXPERIMENT)),
            cfg=(lambda node: lambda wc: sliced_params(node(wc)))(node_of(stage)),
            launch=RANKS.launch if stage.ranks else "",
        threads: stage.threads(CFG)
        resources:
            # A timing job takes the whole pool: nothing trains or times beside it.
            machine=MACHINE if stage.exclusive else 1,
            **(RANKS.resources if stage.ranks else {}),
        wildcard_constraints: **({key: pattern} if key else {})
        log: CFG.at(f"logs/{stage.name}{suffix}.log")
        benchmark: CFG.at(f"logs/benchmarks/{stage.name}{suffix}.tsv")
        shell: "{params.launch}{params.cmd} > {log} 2>&1"
