"""SIGINT and SIGTERM at every stage of `composer up`, and while Terraform runs."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from .conftest import Tally
from .util import (
    APPLIED,
    SSHD,
    STAGES,
    assert_gone,
    executable,
    final_json,
    read_record,
    record_json,
    simple_job,
    start_up,
    tags,
    wait_for,
    write_job,
)

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_during_stage(composer: Composer, tmp_path: Path, tally: Tally,
                             signum: signal.Signals, stage: str) -> None:
    with tally.check("interrupts"):
        job = write_job(tmp_path / "job", simple_job("interrupted", 2, "echo hi"))
        with start_up(composer, job, "up", COMPOSER_PAUSE_AT=stage) as up:
            marker = up.paused(stage)
            up.proc.send_signal(signum)
            marker.unlink(missing_ok=True)
            done = up.finish()
        run_id = up.run_id
        assert run_id is not None
        assert done.returncode == EXIT[signum], done.stderr
        out = final_json(done.stdout)
        assert out["run_id"] == run_id and out["status"] == "interrupted"
        assert f"run/{run_id}" in tags(composer)
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "interrupted"
        assert result["stage"] == stage
        assert signal.Signals(signum).name in result["error"]
        expected = "destroyed" if stage in APPLIED else "not-needed"
        assert result["teardown"]["status"] == expected
        assert_gone(composer, run_id)


def test_sigint_reaches_running_terraform_once(composer: Composer, tmp_path: Path,
                                               tally: Tally) -> None:
    with tally.check("interrupts"):
        slow = executable(tmp_path / "slow-sshd", f'#!/bin/sh\nsleep 2\nexec {SSHD} "$@"\n')
        job = write_job(tmp_path / "job", simple_job("tf-interrupted", 2, "echo hi"))
        with start_up(composer, job, "up", COMPOSER_SSHD=str(slow)) as up:
            log = up.work() / "record" / "logs" / "terraform.log"

            def creating() -> str | None:
                text = log.read_text() if log.exists() else ""
                return text if "Creating..." in text else None

            seen = wait_for(creating, 60, "'Creating...' in terraform.log", alive=up.proc)
            up.proc.send_signal(signal.SIGINT)
            done = up.finish()
        run_id = up.run_id
        assert run_id is not None
        assert "Apply complete!" not in seen, (
            "terraform.log is not written as Terraform runs: 'Creating...' showed up only "
            "together with 'Apply complete!', so the SIGINT came after the apply had ended"
        )
        assert done.returncode == 130, done.stderr
        result = record_json(composer, run_id, "result.json")
        assert result["status"] == "interrupted" and result["stage"] == "apply"
        assert result["teardown"]["status"] == "destroyed"
        tf_log = read_record(composer, run_id, "logs/terraform.log")
        assert tf_log.count("Interrupt received") == 1, "Terraform must get exactly one SIGINT"
        assert "Two interrupts received" not in tf_log
        assert_gone(composer, run_id)
