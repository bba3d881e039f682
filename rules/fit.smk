rule laws:
    input:
        P.laws(CFG, PARAMS).deps,
    output:
        P.laws(CFG, PARAMS).outs,
    params:
        cmd=P.laws(CFG, PARAMS).cmd,
        cfg=sliced_params(P.laws(CFG, PARAMS)),
    resources:
        machine=1,
    log:
        "logs/laws.log",
    benchmark:
        "logs/benchmarks/laws.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
