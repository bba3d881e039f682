rule sample:
    input:
        P.sample(CFG, PARAMS).deps,
    output:
        directory("data/sample"),
    params:
        cmd=P.sample(CFG, PARAMS).cmd,
        cfg=sliced_params(P.sample(CFG, PARAMS)),
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
        P.tokenize(CFG, PARAMS).deps,
    output:
        "data/tokens/train.bin",
        "data/tokens/val.bin",
        "data/tokens/meta.json",
        directory("data/tokens/tokenizer"),
    params:
        cmd=P.tokenize(CFG, PARAMS).cmd,
        cfg=sliced_params(P.tokenize(CFG, PARAMS)),
    threads: 2
    resources:
        machine=1,
    log:
        "logs/tokenize.log",
    benchmark:
        "logs/benchmarks/tokenize.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
