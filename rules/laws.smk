# This file's singleton nodes, taken once from the stage table.
LAWS = P.laws(CFG, PARAMS)


rule laws:
    input:
        LAWS.deps,
    output:
        outputs(LAWS),
    params:
        cmd=LAWS.cmd,
        cfg=sliced_params(LAWS),
    resources:
        machine=1,
    log:
        "logs/laws.log",
    benchmark:
        "logs/benchmarks/laws.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"
