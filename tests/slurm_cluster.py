"""A real single-node SLURM cluster on 127.0.0.1 for tests: munge, slurmctld and slurmd from
Debian's slurm-wlm, started in a private directory and always shut down afterwards."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue")
# Snakemake's SLURM plugin clears SLURM_* (SLURM_CONF too) inside each job, so job steps read
# the default path; the cluster's config is linked there while it runs, and only if none exists.
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")


def missing() -> list[str]:
    return [d for d in DAEMONS if shutil.which(d) is None and not Path(f"/usr/sbin/{d}").exists()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf(root: Path, cpus: int, memory_mb: int) -> str:
    host = socket.gethostname()
    return f"""ClusterName=morphtest
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={root}/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/builtin
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
ReturnToService=2
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


# squeue's states for a job that has ended.
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
         "PREEMPTED"}


def run_batch(args: list[str], env: dict, timeout: float) -> str:
    """`sbatch --wait args`, looking every half second: sbatch --wait looks after 2, 10 and 42 s (then every 32),
    so a job of 13 s returns after 42. The job's final state: COMPLETED when its script exited 0."""
    out = subprocess.run(["sbatch", "--parsable", *args], env=env, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        return f"not submitted: {out.stderr.strip()}"
    job, state = out.stdout.strip().split(";")[0], "unseen"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = subprocess.run(["squeue", "-h", "-j", job, "--states=all", "-o", "%T"], env=env, capture_output=True,
                               text=True).stdout.strip() or "unseen"
        if state in ENDED:
            return state
        time.sleep(0.5)
    return f"job {job} still {state} after {timeout} s"


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


@contextmanager
def cluster(root: Path, cpus: int = 2, memory_mb: int = 16000) -> Iterator[dict]:
    """Yield the environment (SLURM_CONF) under which sbatch/squeue reach the new cluster."""
    for d in ("state", "spool"):
        (root / d).mkdir(parents=True, exist_ok=True)
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root, cpus, memory_mb))
    env = os.environ | {"SLURM_CONF": str(conf)}
    pidfiles = [root / "munged.pid", root / "slurmctld.pid", root / "slurmd.pid"]
    if DEFAULT_CONF.exists() or DEFAULT_CONF.is_symlink():
        raise RuntimeError(f"{DEFAULT_CONF} exists: this machine has a SLURM setup the test must not replace")
    DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
    DEFAULT_CONF.symlink_to(conf)
    try:
        subprocess.run([_sbin("munged"), f"--socket={root}/munge.socket", f"--pid-file={root}/munged.pid",
                        f"--key-file={key}", f"--seed-file={root}/munge.seed", f"--log-file={root}/munged.log",
                        "--force"], check=True, capture_output=True)
        subprocess.run([_sbin("slurmctld"), "-f", str(conf)], check=True, env=env, capture_output=True)
        subprocess.run([_sbin("slurmd"), "-f", str(conf)], check=True, env=env, capture_output=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True, text=True)
            if out.returncode == 0 and out.stdout.strip() == "idle":
                break
            time.sleep(0.5)
        else:
            raise RuntimeError(f"the SLURM node never became idle; see {root}/slurmctld.log and slurmd.log")
        yield env
    finally:
        for pidfile in reversed(pidfiles):
            if pidfile.exists():
                try:
                    os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        time.sleep(1)
        DEFAULT_CONF.unlink()
