# This file's singleton nodes, taken once from the stage table.
SAMPLE = P.sample(CFG, PARAMS)
TOKENIZER = P.tokenizer(CFG, PARAMS)
GATHER = P.tokenize_gather(CFG, PARAMS)


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


rule tokenizer:
    input:
        TOKENIZER.deps,
    output:
        outputs(TOKENIZER),
    params:
        cmd=TOKENIZER.cmd,
        cfg=sliced_params(TOKENIZER),
    resources:
        machine=1,
    log:
        "logs/tokenizer.log",
    benchmark:
        "logs/benchmarks/tokenizer.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


# The scatter: one job per sample shard, each its own cluster job.
rule tokenize_shard:
    input:
        lambda wc: P.tokenize_shard(CFG, PARAMS, wc.shard).deps,
    output:
        outputs(P.tokenize_shard(CFG, PARAMS, "{shard}")),
    params:
        cmd=lambda wc: P.tokenize_shard(CFG, PARAMS, wc.shard).cmd,
        cfg=lambda wc: sliced_params(P.tokenize_shard(CFG, PARAMS, wc.shard)),
    resources:
        machine=1,
    log:
        "logs/tokenize/{shard}.log",
    benchmark:
        "logs/benchmarks/tokenize/{shard}.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


rule tokenize_gather:
    input:
        GATHER.deps,
    output:
        outputs(GATHER),
    params:
        cmd=GATHER.cmd,
        cfg=sliced_params(GATHER),
    resources:
        machine=1,
    log:
        "logs/tokenize_gather.log",
    shell:
        "{params.cmd} > {log} 2>&1"
