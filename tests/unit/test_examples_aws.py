"""The AWS examples carry copies of the local examples' files (a job ships only what lies
in its own directory): the copies stay equal to their originals."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(("copy", "original"), [
    ("aws-mpi/hello.py", "hello-mpi/hello.py"),
    ("aws-train-gpu/train.py", "train-container/train.py"),
    ("aws-train-gpu/data/train.csv", "train-container/data/train.csv"),
])
def test_aws_example_files_equal_their_originals(copy: str, original: str) -> None:
    assert (EXAMPLES / copy).read_bytes() == (EXAMPLES / original).read_bytes()
