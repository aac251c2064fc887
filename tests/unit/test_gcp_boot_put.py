"""modules/gcp-cluster's boot step writes the node's host key through ``put``: the new
file is the owner's only from its first byte, whatever the umask (the step runs with
022), so no other user on the node can read the key while it is being written."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import time
from pathlib import Path

from tests.conftest import ROOT

BOOT = ROOT / "modules" / "gcp-cluster" / "scripts" / "boot.sh"


def put_function() -> str:
    found = re.search(r"^put\(\) \{\n.*?^\}\n", BOOT.read_text(), re.M | re.S)
    assert found is not None, "put() is no longer in boot.sh"
    return found.group(0)


def test_a_file_put_is_private_while_it_is_written(tmp_path: Path) -> None:
    fifo = tmp_path / "stdin"
    os.mkfifo(fifo)
    target = tmp_path / "ssh_host_ed25519_key"
    script = f"umask 022; changed=''\n{put_function()}\nput {target} 600 < {fifo}\n"
    proc = subprocess.Popen(["bash", "-c", script])
    try:
        with open(fifo, "w") as writer:  # put's cat now holds the new file open
            writer.write("key material\n")
            writer.flush()
            partial = target.with_name(target.name + ".composer-new")
            deadline = time.monotonic() + 10
            while not partial.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert stat.S_IMODE(partial.stat().st_mode) == 0o600
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == "key material\n"
