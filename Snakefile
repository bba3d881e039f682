# The method's graph. Its rules come from one table, STAGES in src/morph/workflow/pipeline.py (which
# `morph dvc-yaml` writes dvc.yaml from): rules/stages.smk makes one rule per row.
#   snakemake -j8 results/morph1b.json                       (the default experiment, params.yaml)
#   snakemake -j2 results/morph1b.json --configfile configs/ci.yaml (the target first)
#   snakemake -j2 --configfile configs/paper.yaml              (rule all: the experiment's own morph1b.json, in its out_dir)
#   snakemake --report report.html [--configfile ...]          (after a run: the verdict first, then each result)
report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/stages.smk"


rule all:
    input:
        CFG.at(DECISION),
