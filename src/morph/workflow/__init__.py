"""The top layer: the stage table, the CLI's commands, dvc.yaml, lineage and the checks run before any job.
It may import anything; no stage family imports it."""
