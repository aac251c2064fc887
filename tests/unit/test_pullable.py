"""Cloud nodes pull the container image from its registry: a local image is refused
at preflight, before anything is created."""

from __future__ import annotations

import pytest

from composer.errors import PreflightError
from composer.run import check_pullable


def pin(image: str, pinned_by: str = "digest") -> dict[str, str]:
    return {"image": image, "pinned_by": pinned_by, "ref": f"{image}@sha256:ab"}


@pytest.mark.parametrize("image", ["ghcr.io/acme/train:1", "123456789012.dkr.ecr.us-east-1"
                                   ".amazonaws.com/train:latest", "docker.io/library/python:3"])
def test_a_registry_image_pinned_by_digest_is_pullable(image: str) -> None:
    check_pullable(pin(image), "aws")


@pytest.mark.parametrize(("image", "pinned_by", "why"), [
    ("localhost/composer-train:latest", "digest", "a local name"),
    ("localhost:5000/train:1", "digest", "a local name"),
    ("LOCALHOST/x:1", "digest", "a local name"),
    ("localhost.localdomain/x:1", "digest", "a local name"),
    ("[::1]/x:1", "digest", "a local name"),
    ("[::1]:5000/x:1", "digest", "a local name"),
    ("127.0.0.2:5000/x:1", "digest", "a local name"),
    ("0.0.0.0:5000/x:1", "digest", "a local name"),
    ("composer-train:latest", "id", "pinned by its Id"),
])
def test_a_local_image_is_refused_naming_the_field(image: str, pinned_by: str,
                                                   why: str) -> None:
    with pytest.raises(PreflightError) as caught:
        check_pullable(pin(image, pinned_by), "aws")
    assert caught.value.message.startswith(f"container.image: {image} is {why}")
    assert "registry" in (caught.value.hint or "")
