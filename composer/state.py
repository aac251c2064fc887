"""A run's progress, persisted in its work dir after every stage.

``composer down`` reads it to finish a run whose process is gone.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from composer.jsonfile import write_json

STATE_FILE = "state.json"


@dataclass
class RunState:
    run_id: str
    job: str
    engine: str
    runs_repo: str
    pid: int
    started_at: str
    stage: str = "created"
    applied: bool = False
    destroyed: bool = False
    committed: bool = False
    keep: bool = False
    parallelism: int = 10
    max_log_size: int = 2_000_000
    target: str = "local"
    #: What the target holds outside Terraform (``Allocation.held``: local leases).
    held: list[Any] = field(default_factory=list)

    def save(self, work_dir: Path) -> None:
        write_json(work_dir / STATE_FILE, asdict(self))

    @classmethod
    def load(cls, work_dir: Path) -> RunState:
        data: dict[str, Any] = json.loads((work_dir / STATE_FILE).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("run_id"), str) or \
                not isinstance(data.get("pid"), int) or isinstance(data.get("pid"), bool):
            raise ValueError(f"{work_dir / STATE_FILE}: not a run's state")
        if "blocks" in data and "held" not in data:  # written before targets were a package
            data["held"] = data.pop("blocks")
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)
