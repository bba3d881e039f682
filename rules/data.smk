# This file's singleton nodes, taken once from the stage table.
SAMPLE = P.sample(CFG, PARAMS)
TOKENIZE = P.tokenize(CFG, PARAMS)


rule sample:
    input:
        SAMPLE.deps,
    output:
        outputs(SAMPLE),
    params:
        cmd=SAMPLE.cmd,
        cfg=sliced_params(SAMPLE),
    resources:
        machine=1,
    log:
        "logs/sample.log",
    benchmark:
        "logs/benchmarks/sample.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


rule tokenize:
    input:
        TOKENIZE.deps,
    output:
        outputs(TOKENIZE),
    params:
        cmd=TOKENIZE.cmd,
        cfg=sliced_params(TOKENIZE),
    threads: 2
    resources:
        machine=1,
    log:
        "logs/tokenize.log",
    benchmark:
        "logs/benchmarks/tokenize.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
