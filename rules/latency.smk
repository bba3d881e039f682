rule latency:
    input:
        lambda wc: P.latency(CFG, PARAMS, wc.shape_id).deps,
    output:
        "latency/{shape_id}.json",
    params:
        cmd=lambda wc: P.latency(CFG, PARAMS, wc.shape_id).cmd,
        cfg=lambda wc: sliced_params(P.latency(CFG, PARAMS, wc.shape_id)),
    threads: CFG["latency"]["threads"]
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
        P.latency_collect(CFG, PARAMS).deps,
    output:
        P.latency_collect(CFG, PARAMS).outs,
    params:
        cmd=P.latency_collect(CFG, PARAMS).cmd,
        cfg=sliced_params(P.latency_collect(CFG, PARAMS)),
    resources:
        machine=1,
    log:
        "logs/latency_collect.log",
    shell:
        "{params.cmd} > {log} 2>&1"
