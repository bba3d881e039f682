rule candidates:
    input:
        P.candidates(CFG, PARAMS).deps,
    output:
        P.candidates(CFG, PARAMS).outs,
    params:
        cmd=P.candidates(CFG, PARAMS).cmd,
        cfg=sliced_params(P.candidates(CFG, PARAMS)),
    resources:
        machine=1,
    log:
        "logs/candidates.log",
    shell:
        "{params.cmd} > {log} 2>&1"


# A checkpoint: which shapes fill the top-k slots is known only once it has run.
checkpoint select:
    input:
        P.select(CFG, PARAMS).deps,
    output:
        P.select(CFG, PARAMS).outs,
    params:
        cmd=P.select(CFG, PARAMS).cmd,
        cfg=sliced_params(P.select(CFG, PARAMS)),
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
        P.report(CFG, PARAMS).deps,
    output:
        P.report(CFG, PARAMS).outs,
    params:
        cmd=P.report(CFG, PARAMS).cmd,
        cfg=sliced_params(P.report(CFG, PARAMS)),
    resources:
        machine=1,
    log:
        "logs/report.log",
    shell:
        "{params.cmd} > {log} 2>&1"
