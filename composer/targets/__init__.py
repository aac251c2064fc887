"""Targets: where a cluster comes from. One package per target, one registry line each.

``composer/targets/base.py`` says what a target provides.
"""

from __future__ import annotations

from composer.errors import PreflightError
from composer.targets.aws.target import AwsTarget
from composer.targets.base import Target
from composer.targets.gcp.target import GcpTarget
from composer.targets.local import LocalTarget

TARGETS: dict[str, type[Target]] = {
    "local": LocalTarget,
    "aws": AwsTarget,
    "gcp": GcpTarget,
}


def target_class(name: str) -> type[Target]:
    try:
        return TARGETS[name]
    except KeyError:
        raise PreflightError(
            f"target '{name}' is not available", hint=f"use one of: {', '.join(TARGETS)}"
        ) from None


def get_target(name: str) -> Target:
    return target_class(name)()
