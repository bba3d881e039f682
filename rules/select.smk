# This file's singleton nodes, taken once from the stage table.
CANDIDATES = P.candidates(CFG, PARAMS)
SELECT = P.select(CFG, PARAMS)


rule candidates:
    input:
        CANDIDATES.deps,
    output:
        outputs(CANDIDATES),
    params:
        cmd=CANDIDATES.cmd,
        cfg=sliced_params(CANDIDATES),
    resources:
        machine=1,
    log:
        "logs/candidates.log",
    shell:
        "{params.cmd} > {log} 2>&1"


# A checkpoint: which shapes fill the top-k slots is known only once it has run.
checkpoint select:
    input:
        SELECT.deps,
    output:
        outputs(SELECT),
    params:
        cmd=SELECT.cmd,
        cfg=sliced_params(SELECT),
    resources:
        machine=1,
    log:
        "logs/select.log",
    shell:
        "{params.cmd} > {log} 2>&1"
