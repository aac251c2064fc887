"""``[gcp] image``: an image family or an image, resolved to one image's self link.

Forms: ``projects/P/global/images/family/F`` (the family's newest image that is not
deprecated, ``images.getFromFamily``), ``projects/P/global/images/NAME``, a bare
``NAME`` in ``gcp.project``, or a self link (``https://www.googleapis.com/compute/v1/
projects/...``, as a lock pins it). An image the API marks DEPRECATED is a warning;
OBSOLETE or DELETED is an error (Compute Engine refuses to create from it).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from composer.errors import PreflightError
from composer.targets.gcp.config import GcpSpec
from composer.targets.gcp.session import Clients, api_errors, describe, status, translate

FIELD = "gcp.image"
FAMILY = re.compile(r"projects/([^/]+)/global/images/family/([^/]+)")
IMAGE = re.compile(r"projects/([^/]+)/global/images/([^/]+)")
NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
FORMS = ("projects/P/global/images/family/F, projects/P/global/images/NAME, "
         "or the NAME of an image in gcp.project")


class Reporter(Protocol):
    warnings: list[str]

    def problem(self, path: str, message: str, hint: str | None = None) -> None: ...


def parse(image: str, project: str) -> tuple[str, str | None, str | None] | None:
    """``(project, family, name)`` of an image reference (one of family or name)."""
    text = image.split("/compute/v1/", 1)[-1] if "://" in image else image
    found = FAMILY.fullmatch(text)
    if found:
        return found.group(1), found.group(2), None
    found = IMAGE.fullmatch(text)
    if found:
        return found.group(1), None, found.group(2)
    if NAME.fullmatch(text):
        return project, None, text
    return None


def resolve_image(clients: Clients, gcp: GcpSpec, report: Reporter) -> Any | None:
    """The ``Image`` ``gcp.image`` names; None (and a problem) when there is none."""
    parsed = parse(gcp.image, gcp.project)
    if parsed is None:
        report.problem(FIELD, f"'{gcp.image}' is not an image reference", f"write {FORMS}")
        return None
    project, family, name = parsed
    try:
        if family is not None:
            image = clients.images.get_from_family(project=project, family=family)
        else:
            image = clients.images.get(project=project, image=name)
    except api_errors() as exc:
        if status(exc) in (403, 404):
            what = f"image family '{family}'" if family else f"image '{name}'"
            report.problem(FIELD, f"{what} not found in project {project} ({describe(exc)})",
                           "gcloud compute images list --project PROJECT shows the images")
            return None
        raise translate(exc, "images", "get", PreflightError) from exc
    if not image.self_link or not image.name:
        report.problem(FIELD, f"Compute Engine answered for '{gcp.image}' without the "
                              "image's name or self link: nothing to pin",
                       "check gcp.image and COMPOSER_GCE_ENDPOINT if set")
        return None
    if image.disk_size_gb and int(image.disk_size_gb) > gcp.boot_disk_gb:
        report.problem("gcp.boot_disk_gb", f"{gcp.boot_disk_gb} GB is smaller than image "
                                           f"{image.name} ({image.disk_size_gb} GB)",
                       f"set gcp.boot_disk_gb to at least {image.disk_size_gb}")
    state = image.deprecated.state if image.deprecated else ""
    if state in ("OBSOLETE", "DELETED"):
        report.problem(FIELD, f"image {image.name} is {state}"
                       + _replacement(image), "use its family or a newer image")
        return None
    if state == "DEPRECATED":
        report.warnings.append(f"{FIELD}: image {image.name} is DEPRECATED{_replacement(image)}")
    return image


def _replacement(image: Any) -> str:
    replacement = image.deprecated.replacement if image.deprecated else ""
    return f" (replaced by {replacement.rsplit('/', 1)[-1]})" if replacement else ""
