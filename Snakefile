# The method's graph. Commands, inputs, outputs and params come from src/morph/workflow/pipeline.py,
# the table `morph dvc-yaml` writes dvc.yaml from; rules add threads, resources and logs.
# One rule file per stage family, named after it.
#   snakemake -j8 results/morph1b.json                       (the default experiment, params.yaml)
#   snakemake -j2 results/morph1b.json --configfile configs/ci.yaml (the target first)
#   snakemake --report report.html [--configfile ...]          (after a run: every figure, its rule and params)
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/train.smk"
include: "rules/latency.smk"
include: "rules/laws.smk"
include: "rules/select.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    input:
        "results/morph1b.json",
