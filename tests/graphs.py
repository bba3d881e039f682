"""Build both orchestrators' graphs as {outputs: (command, inputs)} for comparison in tests."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from morph.core.artifacts.report import DECISION

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
REDIRECT = re.compile(r"\s*>\s*\S+\s+2>&1\s*$")


def snakemake_jobs(params: str, target: str = DECISION, cwd: Path = REPO) -> dict:
    """Every job of a forced dry run: frozenset(outputs) -> (rule, command, frozenset(inputs))."""
    out = subprocess.run(
        [SNAKEMAKE, "-n", "-p", "--forceall", target, "--configfile", params],
        cwd=cwd, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    jobs, current = {}, {}
    for line in out.stdout.splitlines():
        if m := re.match(r"^(?:checkpoint|rule) (\w+):$", line):
            current = {"rule": m.group(1), "input": "", "output": ""}
        elif m := re.match(r"^\s+(input|output): (.*)$", line):
            current[m.group(1)] = m.group(2)
        elif line.startswith("Shell command: "):
            cmd = REDIRECT.sub("", line[len("Shell command: "):])
            split = lambda s: frozenset(x.strip() for x in s.split(",") if x.strip())  # noqa: E731 (a one-line helper)
            jobs[split(current["output"])] = (current["rule"], cmd, split(current["input"]))
    return jobs


def dvc_stages(dvc_yaml_text: str) -> dict:
    """Every stage of a dvc.yaml: frozenset(outs + metrics) -> (stage name, command, frozenset(deps))."""
    stages = yaml.safe_load(dvc_yaml_text)["stages"]
    return {
        frozenset(s.get("outs", []) + s.get("metrics", [])): (name, s["cmd"], frozenset(s.get("deps", [])))
        for name, s in stages.items()
    }


def edges(graph: dict) -> set[tuple[str, str]]:
    """(producer command, consumer command) for every input one node reads from another's outputs."""
    producer = {out: cmd for outs, (_, cmd, _) in graph.items() for out in outs}
    return {(producer[i], cmd) for _, (_, cmd, ins) in graph.items() for i in ins if i in producer}
