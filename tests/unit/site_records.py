"""Records written by hand for the run browser's tests: a hostile one whose every
user-controlled text tries to inject markup (an element with an id starting
``pwned``), and the smallest valid PNG for a plot."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

HOSTILE_ID = "hostile-1"
HOSTILE_JOB = '<script id="pwned-job">alert("job")</script>'
PNG_NAME = "plots/loss <b id=pwned-plot>.png"


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00\x00\x00\xff" * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) \
        + chunk(b"IEND", b"")


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True))


def hostile_record(root: Path, run_id: str = HOSTILE_ID) -> Path:
    """A record directory at ``root`` full of markup where user text goes."""
    evil_output = '<i id="pwned-file">x.json'
    _json(root / "result.json", {
        "run_id": run_id, "job": HOSTILE_JOB, "status": '<b id="pwned-status">x</b>',
        "error": '"><img src=x id=pwned-error onerror=alert(1)>', "nodes": 1,
        "started_at": "2026-01-01T00:00:00+00:00", "duration_s": 1.5, "exit_code": 1,
        "failed_node": "node-0", "stages": {"render": 0.1, "<s id=pwned-stage>": 1},
        "teardown": {"status": "destroyed"}, "reproduces": "<a id=pwned-repro>",
    })
    (root / "job.toml").write_text(
        '[job]\nname = "</pre><script id=pwned-toml>alert(1)</script>"\n'
        f"[reproduce]\nmetrics = ['{evil_output}', 'missing.json']\n")
    _json(root / "outputs" / evil_output,
          {"<img id=pwned-key>": 1, "loss": [3, 2, 1], "note": "</td><b id=pwned-val>"})
    _json(root / "manifest.json", {"schema_version": 1, "files": [
        {"path": evil_output, "node": "node-0", "size": 10, "sha256": "ab" * 32,
         "committed": True},
        {"path": "<u id=pwned-withheld>", "node": "node-0", "size": 3, "committed": False,
         "withheld": "<em id=pwned-reason>"},
    ]})
    _json(root / "facts.json", {"nodes": [
        {"name": "node-0", "rank": 0, "hostname": "<img id=pwned-host src=x>", "cpus": 1,
         "gpus": [{"name": "<b id=pwned-gpu>"}]}]})
    _json(root / "environment.json", {
        "environments": {"h": {"packages": {"<script id=pwned-pkg>": "1.0"},
                               "python": {"version": "<i id=pwned-py>"}}},
        "nodes": {"node-0": "h"}, "uniform": True})
    (root / "logs").mkdir()
    (root / "logs" / "node-0.log").write_bytes(
        b"</pre><img src=x id=pwned-log onerror=alert(1)>\x1b[31mred\x1b[0m \x00 \xff\n")
    (root / "logs" / "<b id=pwned-logname>.log").write_text("x\n")
    (root / "infra").mkdir()
    (root / "infra" / "main.tf").write_text(
        '# </pre><script id="pwned-infra">alert(1)</script>\nresource "x" "y" {}\n')
    (root / "infra" / "<i id=pwned-infraname>.tf").write_text("locals {}\n")
    plot = root / PNG_NAME
    plot.parent.mkdir(parents=True)
    plot.write_bytes(tiny_png())
    return root
