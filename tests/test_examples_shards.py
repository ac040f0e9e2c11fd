"""The shard examples in examples/shards/: each engine's command runs `runflow batch
--shard auto/N` with N its parallelism, and the index it sets makes shards 1..N."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from runflow_cli.batch.shards import RUNFLOW_SHARD_INDEX, Shard, parse_shard

SHARDS = Path(__file__).resolve().parent.parent / "examples" / "shards"


def shard_count(command: list[str]) -> int:
    """N of the one ``--shard auto/N`` in a ``runflow batch`` command line."""
    assert command[:2] == ["runflow", "batch"], command
    assert "--out" in command
    found = re.fullmatch(r"auto/(\d+)", command[command.index("--shard") + 1])
    assert found is not None, command
    return int(found[1])


def shards_made(variable: str, values: list[Any], count: int) -> list[Shard]:
    return [parse_shard(f"auto/{count}", {variable: str(v)}) for v in values]


def test_the_kubernetes_indexed_job() -> None:
    job = yaml.safe_load((SHARDS / "kubernetes-indexed-job.yaml").read_text())
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    count = shard_count(container["command"])
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == count
    env = {e["name"]: e for e in container["env"]}
    assert env["RUNFLOW_KEY"]["valueFrom"]["secretKeyRef"]  # from a Secret, never inline
    assert RUNFLOW_SHARD_INDEX not in env  # Kubernetes sets JOB_COMPLETION_INDEX itself
    made = shards_made("JOB_COMPLETION_INDEX", list(range(count)), count)
    assert made == [Shard(i, count) for i in range(1, count + 1)]


def test_the_aws_batch_array_job() -> None:
    document = json.loads((SHARDS / "aws-batch-array-job.json").read_text())
    container = document["jobDefinition"]["containerProperties"]
    count = shard_count(container["command"])
    assert document["submitJob"]["arrayProperties"]["size"] == count
    assert document["submitJob"]["jobDefinition"] == document["jobDefinition"]["jobDefinitionName"]
    secrets = {s["name"] for s in container["secrets"]}
    assert "RUNFLOW_KEY" in secrets
    assert "RUNFLOW_KEY" not in {e["name"] for e in container["environment"]}
    made = shards_made("AWS_BATCH_JOB_ARRAY_INDEX", list(range(count)), count)
    assert made == [Shard(i, count) for i in range(1, count + 1)]


def test_the_github_actions_matrix() -> None:
    workflow = yaml.safe_load((SHARDS / "github-actions-matrix.yml").read_text())
    job = workflow["jobs"]["shard"]
    matrix = job["strategy"]["matrix"]["shard"]
    assert job["strategy"]["fail-fast"] is False
    (step,) = [s for s in job["steps"] if "runflow batch" in s.get("run", "")]
    command = shlex.split(step["run"])
    count = shard_count(command)
    assert len(matrix) == count
    assert command[command.index("--out") + 1].startswith("s3://")  # object storage
    install = [s["run"] for s in job["steps"] if "pip install" in s.get("run", "")]
    assert install == ["pip install 'runflow-cli[cloud]'"]
    assert step["env"][RUNFLOW_SHARD_INDEX] == "${{ matrix.shard }}"
    assert step["env"]["RUNFLOW_KEY"] == "${{ secrets.RUNFLOW_KEY }}"
    assert shards_made(RUNFLOW_SHARD_INDEX, matrix, count) == [
        Shard(i, count) for i in range(1, count + 1)
    ]
    report = workflow["jobs"]["report"]
    assert report["needs"] == "shard" and report["if"] == "always()"
    merged = [s["run"] for s in report["steps"] if "runflow report" in s.get("run", "")]
    assert merged == [f"runflow report {command[command.index('--out') + 1]}"]
