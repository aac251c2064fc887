"""``python -m bench --smoke`` runs every benchmark once and reports every metric.

Nothing here is about speed: only that the harness runs end to end, writes a
number for each metric, and leaves no node behind.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, sshd_processes

pytestmark = pytest.mark.integration

METRICS = ("overhead_n1", "overhead_n2", "fixed_cost", "per_node_cost", "scaling_composer",
           "scaling_baseline", "render", "hashing", "collect", "smallfiles", "startup_help",
           "startup_validate", "startup_help_ratio", "startup_validate_ratio")


def test_bench_smoke_reports_every_metric(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    work = tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--json", str(out), "--workdir", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "total runtime" in done.stdout
    data = json.loads(out.read_text())
    assert not data["errors"]
    for name in METRICS:
        metric = data["metrics"][name]
        value = metric["value"]
        assert isinstance(value, int | float) and math.isfinite(value), (name, metric)
        assert metric["verdict"] in ("PASS", "MISS", "info"), (name, metric)
    stages = data["overhead"]["1"]["stages_s"]
    assert {"render", "apply", "run", "destroy", "record"} <= set(stages)
    assert not sshd_processes(str(work))
    assert not list(work.iterdir())
