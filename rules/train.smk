# This file's singleton nodes, taken once from the stage table.
COLLECT = P.collect(CFG, PARAMS)
# How a training job's ranks start: train.devices x train.num_nodes (one SLURM task each under SLURM).
RANKS = P.train_ranks(CFG)


rule train:
    input:
        lambda wc: P.train(CFG, PARAMS, wc.run_id).deps,
    output:
        outputs(P.train(CFG, PARAMS, "{run_id}")),
    params:
        cmd=lambda wc: P.train(CFG, PARAMS, wc.run_id).cmd,
        cfg=lambda wc: sliced_params(P.train(CFG, PARAMS, wc.run_id)),
        launch=RANKS.launch,
    threads: CFG.train.threads
    resources:
        machine=1,
        **RANKS.resources,
    log:
        "logs/train/{run_id}.log",
    benchmark:
        "logs/benchmarks/train/{run_id}.tsv"
    shell:
        "{params.launch}{params.cmd} > {log} 2>&1"


rule collect:
    input:
        COLLECT.deps,
    output:
        outputs(COLLECT),
    params:
        cmd=COLLECT.cmd,
        cfg=sliced_params(COLLECT),
    resources:
        machine=1,
    log:
        "logs/collect.log",
    shell:
        "{params.cmd} > {log} 2>&1"


# The top-k slots: which shape each trains is read from the select checkpoint's output.
rule train_target:
    input:
        lambda wc: P.train_slot(CFG, PARAMS, wc.slot).deps,
    output:
        outputs(P.train_slot(CFG, PARAMS, "{slot}")),
    params:
        cmd=lambda wc: P.train_slot(CFG, PARAMS, wc.slot).cmd,
        cfg=lambda wc: sliced_params(P.train_slot(CFG, PARAMS, wc.slot)),
        launch=RANKS.launch,
    threads: CFG.train.threads
    resources:
        machine=1,
        **RANKS.resources,
    log:
        "logs/train/{slot}.log",
    benchmark:
        "logs/benchmarks/train/{slot}.tsv"
    shell:
        "{params.launch}{params.cmd} > {log} 2>&1"
