# Shared by every rule file: the validated experiment and the one stage table.
import json
import os

from morph import config as morph_config
from morph import grid as morph_grid
from morph import pipeline as P

# `--configfile X` picks the experiment file; its path is passed to every command, and
# the same loader validates it (Snakemake's merged `config` dict is not used).
PARAMS = os.path.relpath(workflow.overwrite_configfiles[-1]) if workflow.overwrite_configfiles else "params.yaml"
CFG = morph_config.load(PARAMS)

# Timing must not share the machine: a latency job takes the whole pool, every other job one unit.
MACHINE = 100
if "machine" not in workflow.global_resources:
    workflow.register_resource("machine", MACHINE)

wildcard_constraints:
    run_id=r"d\d+-l\d+-[tD][^/]+",
    slot=r"top-\d+",
    shape_id=r"d\d+-l\d+",
    model=r"[^/]+",


def sliced_params(node):
    """The params sections a node reads; Snakemake's params rerun-trigger fires when they change."""
    return json.dumps({k: CFG[k] for k in node.params}, sort_keys=True)
