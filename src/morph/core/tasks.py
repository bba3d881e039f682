"""The evaluation tasks: one lm-eval YAML each in morph/evaluate/tasks, read as data (no stage code runs).

`<task>.yaml` defines the lm-eval task `morph_<task>` and the data folder it reads; users name tasks without
the prefix. Files starting with "_" are shared includes and the group that lists the default suite."""
from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml

from morph.core.errors import MorphError

TASKS_DIR = Path(__file__).resolve().parents[1] / "evaluate" / "tasks"
PREFIX = "morph_"
GROUP = "morph_zero_shot"  # every task, so plain lm-eval runs the suite by name
GROUP_FILE = TASKS_DIR / f"_{GROUP}.yaml"


class _TaskYamlLoader(yaml.SafeLoader):
    """Reads lm-eval task YAMLs without importing their `!function` helpers."""


_TaskYamlLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def lm_eval_name(task: str) -> str:
    """The lm-eval task name of a morph task, e.g. arc_easy -> morph_arc_easy."""
    return PREFIX + task


def read_task_yaml(path: Path) -> dict:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskYamlLoader)  # noqa: S506 (a SafeLoader subclass)


@cache
def task_folders(tasks_dir: Path = TASKS_DIR) -> dict[str, str]:
    """Task name (the YAML's stem) -> data folder relative to the data root, from every task YAML."""
    found = {}
    for path in sorted(p for p in tasks_dir.glob("*.yaml") if not p.stem.startswith("_")):
        cfg = read_task_yaml(path)
        if cfg.get("task") != lm_eval_name(path.stem):
            raise MorphError(f"{path}: defines task {cfg.get('task')!r}; name it {lm_eval_name(path.stem)!r} "
                             "(morph_ followed by the file's stem)")
        found[path.stem] = cfg["dataset_kwargs"]["folder"]
    return found


def default_tasks() -> tuple[str, ...]:
    """The group's members, in its order: evaluate.tasks when the experiment names none."""
    return tuple(t.removeprefix(PREFIX) for t in read_task_yaml(GROUP_FILE)["task"])
