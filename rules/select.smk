# This file's singleton nodes, taken once from the stage table.
CANDIDATES = P.candidates(CFG, PARAMS)
REPORT = P.report(CFG, PARAMS)
SELECT = P.select(CFG, PARAMS)


rule candidates:
    input:
        CANDIDATES.deps,
    output:
        CANDIDATES.outs,
    params:
        cmd=CANDIDATES.cmd,
        cfg=sliced_params(CANDIDATES),
    resources:
        machine=1,
    log:
        "logs/candidates.log",
    shell:
        "{params.cmd} > {log} 2>&1"


# A checkpoint: which shapes fill the top-k slots is known only once it has run.
checkpoint select:
    input:
        SELECT.deps,
    output:
        SELECT.outs,
    params:
        cmd=SELECT.cmd,
        cfg=sliced_params(SELECT),
    resources:
        machine=1,
    log:
        "logs/select.log",
    shell:
        "{params.cmd} > {log} 2>&1"


rule train_target:
    input:
        lambda wc: P.train_slot(CFG, PARAMS, wc.slot).deps,
    output:
        model=directory("runs/{slot}/model"),
        metrics="runs/{slot}/metrics.json",
    params:
        cmd=lambda wc: P.train_slot(CFG, PARAMS, wc.slot).cmd,
        cfg=lambda wc: sliced_params(P.train_slot(CFG, PARAMS, wc.slot)),
    threads: CFG["train"]["threads"]
    resources:
        machine=1,
    log:
        "logs/train/{slot}.log",
    benchmark:
        "logs/benchmarks/train/{slot}.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


rule evaluate:
    input:
        lambda wc: P.evaluate(CFG, PARAMS, wc.model).deps,
    output:
        "results/eval/{model}.json",
    params:
        cmd=lambda wc: P.evaluate(CFG, PARAMS, wc.model).cmd,
        cfg=lambda wc: sliced_params(P.evaluate(CFG, PARAMS, wc.model)),
    threads: 2
    resources:
        machine=1,
    log:
        "logs/evaluate/{model}.log",
    benchmark:
        "logs/benchmarks/evaluate/{model}.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


rule report:
    input:
        REPORT.deps,
    output:
        REPORT.outs,
    params:
        cmd=REPORT.cmd,
        cfg=sliced_params(REPORT),
    resources:
        machine=1,
    log:
        "logs/report.log",
    shell:
        "{params.cmd} > {log} 2>&1"
