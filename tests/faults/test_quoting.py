"""Arguments and environment values reach every rank byte for byte, under both launchers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .conftest import Tally
from .util import assert_gone, final_json, read_record, write_job

if TYPE_CHECKING:
    from tests.conftest import Composer

pytestmark = pytest.mark.integration

ARGS = (
    "two words",
    "it's",
    'say "hi"',
    "a;b",
    "$(id)",
    "`id`",
    "line one\nline two",
    "héllo ☃",
    "",
    "$HOME",
    "*",
    "back\\slash",
    "--not-an-option",
    "  padded  ",
    "tab\there",
)
ENV = {f"Q_{i:02d}": value for i, value in enumerate(ARGS)}

ECHO = """\
import json
import os
import sys
from pathlib import Path

rank = os.environ.get("OMPI_COMM_WORLD_RANK") or os.environ["COMPOSER_NODE_RANK"]
names = sorted(k for k in os.environb if k.startswith(b"Q_"))
data = {
    "argv": [os.fsencode(arg).hex() for arg in sys.argv[1:]],
    "env": {name.decode(): os.environb[name].hex() for name in names},
}
out = Path(os.environ["COMPOSER_OUTPUT_DIR"]) / f"echo-{rank}.json"
out.write_text(json.dumps(data, sort_keys=True))
"""


def decoded(data: dict[str, Any]) -> tuple[list[bytes], dict[str, bytes]]:
    return ([bytes.fromhex(h) for h in data["argv"]],
            {k: bytes.fromhex(v) for k, v in data["env"].items()})


@pytest.mark.parametrize("launcher", ["ssh", "mpi"])
def test_arguments_and_env_survive_quoting(composer: Composer, tmp_path: Path, tally: Tally,
                                           launcher: str) -> None:
    with tally.check("quoting"):
        doc: dict[str, Any] = {
            "job": {"name": f"quoting-{launcher}"},
            "cluster": {"target": "local", "nodes": 2, "slots_per_node": 1},
            "run": {"launcher": launcher, "command": ["python", "echo.py", *ARGS], "env": ENV},
            "code": {"path": "."},
            "outputs": {"paths": ["echo-*.json"]},
        }
        job = write_job(tmp_path / "job", doc, {"echo.py": ECHO})
        done = composer.run("up", str(job), "--json", timeout=240)
        assert done.returncode == 0, done.stderr
        run_id = final_json(done.stdout)["run_id"]
        want_argv = [arg.encode("utf-8") for arg in ARGS]
        want_env = {name: value.encode("utf-8") for name, value in ENV.items()}
        for rank in range(2):
            name = f"outputs/node-{rank}/echo-{rank}.json"
            data = json.loads(read_record(composer, run_id, name))
            argv, env = decoded(data)
            assert argv == want_argv, f"rank {rank} got other arguments"
            assert env == want_env, f"rank {rank} got other environment values"
        assert_gone(composer, run_id)
