# This file's singleton nodes, taken once from the stage table.
COLLECT = P.collect(CFG, PARAMS)


rule train:
    input:
        lambda wc: P.train(CFG, PARAMS, wc.run_id).deps,
    output:
        outputs(P.train(CFG, PARAMS, "{run_id}")),
    params:
        cmd=lambda wc: P.train(CFG, PARAMS, wc.run_id).cmd,
        cfg=lambda wc: sliced_params(P.train(CFG, PARAMS, wc.run_id)),
    threads: CFG.train.threads
    resources:
        machine=1,
    log:
        "logs/train/{run_id}.log",
    benchmark:
        "logs/benchmarks/train/{run_id}.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


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
    threads: CFG.train.threads
    resources:
        machine=1,
    log:
        "logs/train/{slot}.log",
    benchmark:
        "logs/benchmarks/train/{slot}.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
