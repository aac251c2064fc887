"""One node of three fails to start during apply: the two that started are destroyed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    SSHD,
    assert_gone,
    executable,
    final_json,
    read_record,
    record_json,
    simple_job,
    tags,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

WRAPPER = f"""#!/bin/sh
case "$2" in
  */nodes/node-1/sshd_config)
    echo "bind to port 22022 on 127.0.0.1 failed: Address already in use." >&2
    exit 255 ;;
esac
exec {SSHD} "$@"
"""


def test_apply_fails_for_one_node(composer: Composer, tmp_path: Path, tally: Tally) -> None:
    with tally.check("apply halfway"):
        sshd = executable(tmp_path / "node-1-fails", WRAPPER)
        job = write_job(tmp_path / "job", simple_job("half-applied", 3, "echo hi"))
        done = composer.run("up", str(job), "--json", timeout=240, COMPOSER_SSHD=str(sshd))
        assert done.returncode == 4, done.stderr
        assert "Address already in use" in done.stderr
        assert "local-exec provisioner error" in done.stderr
        assert "Traceback" not in done.stderr
        out = final_json(done.stdout)
        run_id = out["run_id"]
        assert out["status"] == "failed"
        assert f"run/{run_id}" in tags(composer)
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "failed" and result["stage"] == "apply"
        assert result["teardown"]["status"] == "destroyed"
        tf_log = read_record(composer, run_id, "logs/terraform.log")
        for rank in (0, 2):
            assert f"terraform_data.node[{rank}]: Creation complete" in tf_log
            assert f"terraform_data.node[{rank}]: Destruction complete" in tf_log
        assert_gone(composer, run_id)
