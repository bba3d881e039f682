rule evaluate:
    input:
        lambda wc: P.evaluate(CFG, PARAMS, wc.model).deps,
    output:
        outputs(P.evaluate(CFG, PARAMS, "{model}")),
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
