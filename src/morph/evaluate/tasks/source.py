"""lm-eval's `custom_dataset` hook for every morph task: read the split through morph.evaluate.task_data.

lm-eval calls it with the task's dataset_kwargs (folder) and metadata (data_root, when
`morph evaluate` passes one; otherwise the default root is used).
"""
from morph.evaluate.task_data import load_split


def load(folder, data_root=None, **_metadata):
    return load_split(folder, data_root)
