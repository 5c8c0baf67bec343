"""Realistic ClusterCockpit traffic of one HPC cluster, deterministic from a seed: line protocol.

The lines a cluster's nodes and batch system send over a span of time, as cc-metric-collector
and the job scheduler write them: job start and stop events (both spellings), node state,
GPU and file system events, and log lines (slurmd, kernel, sshd, health checks) with a log
level. Feed them to `collector.ccmessage.decode` as a source would; sorted by timestamp.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

CLUSTER = "alex"
_USERS = tuple(f"u{n:04d}" for n in range(1, 61))
_PROJECTS = (
    "climate", "astro", "bio", "chem", "cfd", "materials", "genomics", "ml-vision",
    "ml-language", "qcd", "seismic", "hydro",
)  # fmt: skip
_JOB_NAMES = (
    "ocean-sim", "lbm-run", "md-equilibrate", "md-production", "train-resnet", "finetune-llm",
    "dft-relax", "cfd-mesh", "assembly", "lattice-hmc", "wrf-forecast", "postprocess",
)  # fmt: skip
_STOP_STATES = ("completed",) * 16 + ("failed",) * 2 + ("cancelled", "timeout")
_NODE_STATES = (
    "drained: maintenance", "drained: health check failed", "down: not responding",
    "resumed", "idle", "drained: memory errors",
)  # fmt: skip
_FS_EVENTS = (
    "quota 90% reached", "mount stalled for 30s", "remounted read-write", "metadata server slow",
)  # fmt: skip
_XIDS = (
    "Xid 79: GPU has fallen off the bus", "Xid 48: double bit ECC error",
    "Xid 31: GPU memory page fault", "Xid 13: graphics engine exception",
)  # fmt: skip
_SLURMD = (
    "launching batch job {job}", "job {job} completed with slurm_rc = 0",
    "task/cgroup: job {job}: memory limit 250G", "prolog for job {job} ran for 2 seconds",
)  # fmt: skip
_KERNEL = (
    ("warn", "EDAC MC0: 1 CE memory read error on CPU_SrcID#0_Ha#0_Chan#1_DIMM#0"),
    ("error", "Out of memory: Killed process {pid} (a.out)"),
    ("warn", "mlx5_core 0000:41:00.0: link down"),
    ("info", "mlx5_core 0000:41:00.0: link up"),
    ("error", "nfs: server nfs01 not responding, still trying"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Node:
    hostname: str
    sub_cluster: str  # main (CPU) | gpu
    gpus: int


def nodes(count: int = 256) -> list[Node]:
    """The cluster's compute nodes: CPU nodes a0001…, then one GPU node in eight."""
    gpu_nodes = count // 8
    return [
        Node(f"a{n:04d}", "main", 0) if n <= count - gpu_nodes else Node(f"g{n:04d}", "gpu", 4)
        for n in range(1, count + 1)
    ]


def lines(
    n: int, seed: int = 1, now: datetime | None = None, days: float = 365.0
) -> list[tuple[int, str]]:
    """`n` ClusterCockpit lines as (timestamp in ns, line), sorted, within `days` before `now`.

    About 30% job events (each job's start, and its stop unless still running at `now`), 20%
    cluster events and 50% log lines. The same seed and `now` give the same lines.
    """
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    rng = random.Random(f"hpc-{seed}")  # noqa: S311 - reproducible data, not secrets
    cluster = _Cluster(rng, nodes(), now - timedelta(days=days), now)
    out = cluster.jobs(int(n * 0.3))
    out += cluster.events(int(n * 0.2))
    out += cluster.logs(n - len(out))
    out.sort()
    return out


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Cluster:
    def __init__(self, rng: random.Random, fleet: list[Node], start: datetime, end: datetime):
        self.rng = rng
        self.fleet = fleet
        self.start_ns = int(start.timestamp()) * 10**9
        self.end_ns = int(end.timestamp()) * 10**9
        self.job_ids: list[int] = []

    def _when(self) -> int:
        return self.rng.randrange(self.start_ns, self.end_ns)

    def _node(self, gpu: bool | None = None) -> Node:
        while True:
            node = self.rng.choice(self.fleet)
            if gpu is None or (node.gpus > 0) == gpu:
                return node

    def jobs(self, count: int) -> list[tuple[int, str]]:
        """Start and stop events, `count` in all: a job running at `end` has no stop yet."""
        rng = self.rng
        out: list[tuple[int, str]] = []
        job_id = 1_000_000
        while len(out) < count:
            job_id += 1
            gpu = rng.random() < 0.15
            size = rng.choice((1, 1, 1, 1, 2, 2, 4, 8, 16))
            hosts = sorted({self._node(gpu).hostname for _ in range(size)})
            walltime = rng.choice((3600, 4 * 3600, 12 * 3600, 24 * 3600))
            start = self._when()
            start_s = start // 10**9
            state = rng.choice(_STOP_STATES)
            run_s = walltime if state == "timeout" else int(rng.uniform(60, walltime))
            job = {
                "jobId": job_id,
                "user": rng.choice(_USERS),
                "project": rng.choice(_PROJECTS),
                "cluster": CLUSTER,
                "subCluster": "gpu" if gpu else "main",
                "partition": "gpu" if gpu else rng.choice(("work", "work", "devel", "long")),
                "arrayJobId": 0,
                "numNodes": len(hosts),
                "numHwthreads": 72 * len(hosts),
                "numAcc": 4 * len(hosts) if gpu else 0,
                "exclusive": 1,
                "walltime": walltime,
                "jobState": "running",
                "startTime": start_s,
                "resources": [
                    {"hostname": h, **({"accelerators": ["0", "1", "2", "3"]} if gpu else {})}
                    for h in hosts
                ],
                "metaData": {
                    "jobName": rng.choice(_JOB_NAMES),
                    "jobScript": "#!/bin/bash\n#SBATCH --exclusive\nsrun ./run.sh",
                },
            }
            spelling = rng.random() < 0.5
            out.append((start, self._job_line("start_job", job, start, spelling)))
            stop = start + run_s * 10**9
            if stop < self.end_ns and len(out) < count:
                stopped = {
                    "jobId": job_id,
                    "cluster": CLUSTER,
                    "startTime": start_s,
                    "stopTime": stop // 10**9,
                    "duration": run_s,
                    "jobState": state,
                }
                out.append((stop, self._job_line("stop_job", stopped, stop, spelling)))
            self.job_ids.append(job_id)
        return out

    def _job_line(self, name: str, job: dict[str, object], at: int, spelling: bool) -> str:
        key = f"job,function={name}" if spelling else name
        message = _quoted(orjson.dumps(job).decode())
        return (
            f"{key},cluster={CLUSTER},hostname=slurmctld,type=node,type-id=0 event={message} {at}"
        )

    def events(self, count: int) -> list[tuple[int, str]]:
        rng = self.rng
        out: list[tuple[int, str]] = []
        for _ in range(count):
            at = self._when()
            roll = rng.random()
            if roll < 0.5:
                node = self._node()
                line = (
                    f"node_state,cluster={CLUSTER},hostname={node.hostname},type=node,type-id=0 "
                    f"event={_quoted(rng.choice(_NODE_STATES))} {at}"
                )
            elif roll < 0.7:
                node = self._node(gpu=True)
                gpu = rng.randrange(node.gpus)
                line = (
                    f"gpu_xid,cluster={CLUSTER},hostname={node.hostname},type=accelerator,"
                    f"type-id=00000000:{0x3B + gpu:02X}:00.0,stype=gpu,stype-id={gpu} "
                    f"event={_quoted(rng.choice(_XIDS))} {at}"
                )
            elif roll < 0.85:
                node = self._node()
                mount = rng.choice(("/home", "/scratch", "/work"))
                line = (
                    f"filesystem,cluster={CLUSTER},hostname={node.hostname},type=node,type-id=0,"
                    f"stype=filesystem,stype-id={mount} "
                    f"event={_quoted(mount + ': ' + rng.choice(_FS_EVENTS))} {at}"
                )
            else:
                node = self._node()
                check = rng.choice(("check_hw_ib", "check_fs_mount", "check_ps_service"))
                line = (
                    f"healthcheck,cluster={CLUSTER},hostname={node.hostname},type=node,type-id=0 "
                    f"event={_quoted(check + ': FAILED')} {at}"
                )
            out.append((at, line))
        return out

    def logs(self, count: int) -> list[tuple[int, str]]:
        rng = self.rng
        out: list[tuple[int, str]] = []
        jobs = self.job_ids or [1_000_001]
        for _ in range(count):
            at = self._when()
            node = self._node()
            roll = rng.random()
            if roll < 0.55:
                name, level = "slurmd", "info"
                text = rng.choice(_SLURMD).format(job=rng.choice(jobs))
            elif roll < 0.75:
                name = "kernel"
                level, text = rng.choice(_KERNEL)
                text = text.format(pid=rng.randrange(1000, 99999))
            elif roll < 0.95:
                name, level = "sshd", "info"
                address = f"10.20.{rng.randrange(256)}.{rng.randrange(256)}"
                text = f"Accepted publickey for {rng.choice(_USERS)} from {address}"
            else:
                name, level = "nhc", "error"
                text = "Health check failed: check_hw_ib: port 1 state Down"
            out.append(
                (
                    at,
                    f"{name},cluster={CLUSTER},hostname={node.hostname},type=node,type-id=0,"
                    f"loglevel={level} log={_quoted(text)} {at}",
                )
            )
        return out
