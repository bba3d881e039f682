# The method's graph. Commands, inputs and params come from src/morph/pipeline.py, the same
# table `morph dvc-yaml` writes dvc.yaml from; rules here add outputs, threads, resources and logs.
#   snakemake -j8 results/morph1b.json                       (the default experiment, params.yaml)
#   snakemake -j2 --configfile configs/ci.yaml results/morph1b.json
include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/latency.smk"
include: "rules/fit.smk"
include: "rules/select.smk"


rule all:
    input:
        "results/morph1b.json",
