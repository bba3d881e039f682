# This file's singleton nodes, taken once from the stage table.
REPORT = P.report(CFG, PARAMS)


rule report:
    input:
        REPORT.deps,
    output:
        outputs(REPORT),
    params:
        cmd=REPORT.cmd,
        cfg=sliced_params(REPORT),
    resources:
        machine=1,
    log:
        "logs/report.log",
    shell:
        "{params.cmd} > {log} 2>&1"
