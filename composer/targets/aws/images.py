"""``[aws] image``: an AMI id or an ``ssm:<parameter path>`` alias, resolved to one AMI.

``resolve_image`` answers with the AMI id (pinned in the lock), its architecture,
name and owner, and the login user its family uses where that can be known
(``login_user_for``); an image composer cannot place needs ``[aws] ssh_user``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from composer.errors import PreflightError
from composer.targets.aws.session import (
    client,
    describe,
    error_code,
    other_errors,
    translate,
)

FIELD = "aws.image"
SSM_PREFIX = "ssm:"
AMI_ID = re.compile(r"ami-[0-9a-f]{8,17}")

# Publishers' account ids (the same in every commercial region).
CANONICAL = "099720109477"
AMAZON_LINUX = "137112412989"
DEBIAN = "136693071363"
ROCKY = "792107900819"

UBUNTU_USER = "ubuntu"
AMAZON_USER = "ec2-user"
DEBIAN_USER = "admin"
ROCKY_USER = "rocky"
AMAZON_LINUX_NAMES = ("al2023-", "amzn2-", "amzn-", "amazon-linux", "amazon-eks-node-al")


@dataclass(frozen=True)
class Image:
    image: str  # as written in the spec
    ami_id: str
    architecture: str  # x86_64 | arm64 (EC2's names)
    name: str
    owner: str  # account id of the publisher
    login_user: str | None  # from the image's family; None when it cannot be known


def resolve_image(session: Any, region: str, image: str) -> Image:
    """Resolve ``image`` in ``region``; ``PreflightError`` naming ``aws.image`` when it does not."""
    ami_id = image
    if image.startswith(SSM_PREFIX):
        ami_id = _from_parameter(session, region, image[len(SSM_PREFIX):])
    elif not AMI_ID.fullmatch(image):
        raise PreflightError(
            f"{FIELD}: '{image}' is neither an AMI id (ami-...) nor an ssm:<parameter path>",
            hint="write an AMI id of the region, or an SSM alias such as "
                 "ssm:/aws/service/canonical/ubuntu/server/24.04/stable/current/amd64/"
                 "hvm/ebs-gp3/ami-id",
        )
    found = _describe(session, region, ami_id, image)
    name = str(found.get("Name", ""))
    owner = str(found.get("OwnerId", ""))
    return Image(
        image=image,
        ami_id=ami_id,
        architecture=str(found.get("Architecture", "")),
        name=name,
        owner=owner,
        login_user=login_user_for(name, owner, found.get("PlatformDetails", "")),
    )


def login_user_for(name: str, owner: str, platform: str = "") -> str | None:
    """The default login user of an image, from its name and publisher, or None."""
    lowered = name.lower()
    if "windows" in platform.lower() or lowered.startswith("windows"):
        return None
    if "deep learning" in lowered or "dlami" in lowered:  # AWS's Deep Learning AMIs
        if "ubuntu" in lowered:
            return UBUNTU_USER
        if "amazon linux" in lowered or "al2023" in lowered:
            return AMAZON_USER
        return None
    if owner == CANONICAL or lowered.startswith("ubuntu"):
        return UBUNTU_USER
    if owner == AMAZON_LINUX or lowered.startswith(AMAZON_LINUX_NAMES):
        return AMAZON_USER
    if owner == DEBIAN or lowered.startswith("debian-"):
        return DEBIAN_USER
    if owner == ROCKY or lowered.startswith("rocky-"):
        return ROCKY_USER
    return None


def _from_parameter(session: Any, region: str, path: str) -> str:
    from botocore.exceptions import ClientError

    if not path:
        raise PreflightError(f"{FIELD}: 'ssm:' needs a parameter path after it",
                             hint="for instance ssm:/aws/service/ami-amazon-linux-latest/"
                                  "al2023-ami-kernel-default-x86_64")
    ssm = client(session, "ssm", region)
    try:
        value = str(ssm.get_parameter(Name=path)["Parameter"]["Value"])
    except ClientError as exc:
        if error_code(exc) in ("ParameterNotFound", "ValidationException"):
            raise PreflightError(
                f"{FIELD}: SSM parameter '{path}' not found in {region} ({describe(exc)})",
                hint="check the path (aws ssm get-parameter --name PATH --region REGION) "
                     "or write an AMI id",
            ) from None
        raise _failed(exc, "GetParameter") from exc
    except other_errors() as exc:
        raise _failed(exc, "GetParameter") from exc
    if not AMI_ID.fullmatch(value):
        raise PreflightError(
            # Not the value itself: a parameter may hold anything (a password), and
            # a job from someone else must not be able to print it.
            f"{FIELD}: SSM parameter '{path}' holds something other than an AMI id "
            f"({len(value)} characters)",
            hint="point aws.image at a parameter whose value is an ami-... id",
        )
    return value


def _describe(session: Any, region: str, ami_id: str, written: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    ec2 = client(session, "ec2", region)
    via = f" (from '{written}')" if written != ami_id else ""
    not_found = PreflightError(
        f"{FIELD}: image {ami_id}{via} not found in {region}",
        hint="AMI ids differ between regions: use the id for this region, or an ssm: alias",
    )
    try:
        images = ec2.describe_images(ImageIds=[ami_id])["Images"]
    except ClientError as exc:
        if error_code(exc).startswith("InvalidAMIID"):
            raise not_found from None
        raise _failed(exc, "DescribeImages") from exc
    except other_errors() as exc:
        raise _failed(exc, "DescribeImages") from exc
    if not images:
        raise not_found
    found: dict[str, Any] = images[0]
    state = found.get("State", "available")
    if state != "available":
        raise PreflightError(f"{FIELD}: image {ami_id}{via} is {state}, not available",
                             hint="choose an available image")
    return found


def _failed(exc: BaseException, operation: str) -> PreflightError:
    """Any other AWS failure while resolving the image, still naming ``aws.image``."""
    service = "ssm" if operation == "GetParameter" else "ec2"
    error = translate(exc, service, operation, PreflightError)
    return PreflightError(f"{FIELD}: {error.message}", hint=error.hint)
