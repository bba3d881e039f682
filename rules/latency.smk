# This file's singleton nodes, taken once from the stage table.
LATENCY_COLLECT = P.latency_collect(CFG, PARAMS)


rule latency:
    input:
        lambda wc: P.latency(CFG, PARAMS, wc.shape_id).deps,
    output:
        outputs(P.latency(CFG, PARAMS, "{shape_id}")),
    params:
        cmd=lambda wc: P.latency(CFG, PARAMS, wc.shape_id).cmd,
        cfg=lambda wc: sliced_params(P.latency(CFG, PARAMS, wc.shape_id)),
    threads: CFG.latency.threads
    resources:
        machine=MACHINE,  # exclusive: nothing trains or times beside a timing job
    log:
        "logs/latency/{shape_id}.log",
    benchmark:
        "logs/benchmarks/latency/{shape_id}.tsv"
    shell:
        "{params.cmd} > {log} 2>&1"


rule latency_collect:
    input:
        LATENCY_COLLECT.deps,
    output:
        outputs(LATENCY_COLLECT),
    params:
        cmd=LATENCY_COLLECT.cmd,
        cfg=sliced_params(LATENCY_COLLECT),
    resources:
        machine=1,
    log:
        "logs/latency_collect.log",
    shell:
        "{params.cmd} > {log} 2>&1"
