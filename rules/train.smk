# This file's singleton nodes, taken once from the stage table.
COLLECT = P.collect(CFG, PARAMS)


rule train:
    input:
        lambda wc: P.train(CFG, PARAMS, wc.run_id).deps,
    output:
        model=directory("runs/{run_id}/model"),
        metrics="runs/{run_id}/metrics.json",
    params:
        cmd=lambda wc: P.train(CFG, PARAMS, wc.run_id).cmd,
        cfg=lambda wc: sliced_params(P.train(CFG, PARAMS, wc.run_id)),
    threads: CFG["train"]["threads"]
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
        "results/runs.csv",
    params:
        cmd=COLLECT.cmd,
        cfg=sliced_params(COLLECT),
    resources:
        machine=1,
    log:
        "logs/collect.log",
    shell:
        "{params.cmd} > {log} 2>&1"
