"""``[container]``, ``[code]`` and ``[inputs]``: what the workload runs in, and the files
shipped to every node."""

from __future__ import annotations

from typing import Any

from composer.spec.check import Checker, Table
from composer.spec.fields import MISSING, Section, boolean, choice, other, string
from composer.spec.model import CodeSpec, ContainerSpec, InputSpec, MountSpec
from composer.spec.text import describe, join, quote, suggest

CONTAINER_RUNTIMES = ("podman", "docker", "apptainer", "none")
MOUNT_MODES = ("ro", "rw")

CONTAINER = Section("container", "Run the workload inside a container image.", fields=(
    choice("runtime", '`"podman"`, `"docker"`, `"apptainer"` or `"none"` (run on the host)',
           CONTAINER_RUNTIMES, default="none"),
    string("image", "an image in the runtime's local store (podman, docker), or a SIF file "
           "path (apptainer); no spaces", shown_default='required unless `runtime = "none"`',
           pattern=r"\S+"),
    other("mounts", "array of strings", '`"host:container"` or `"host:container:ro"` (`:rw` '
          "is the default); both paths absolute; no container path twice",
          {"type": "array",
           "items": {"type": "string", "pattern": "^/[^:]*:/[^:]*(:(ro|rw))?$"}},
          default=[]),
    boolean("gpus", "pass the node's GPUs through when it has any: podman `--device "
            "nvidia.com/gpu=all`, docker `--gpus all`, apptainer `--nv`", False),
))
CODE = Section("code", "The directory shipped to every node.", fields=(
    string("path", "an existing directory inside the job directory", default=".",
           nonempty=True),
))
INPUTS = Section("inputs", "Local file (inside the job directory) = destination on the nodes "
                 "(a relative path).", open=True, values={"type": "string", "pattern": r"\S"})


def check_container(c: Checker, table: Table | None) -> ContainerSpec:
    if table is None:
        return ContainerSpec()
    runtime_value, runtime_path = c.get(table, CONTAINER, "runtime")
    runtime = c.described(runtime_value, runtime_path, CONTAINER.field("runtime"))
    image_value, image_path = c.get(table, CONTAINER, "image")
    image = c.string(image_value, image_path, nonempty=True)
    if image is not None and (image != image.strip() or any(ch.isspace() for ch in image)):
        image = c.add(image_path, f"must not contain spaces, got {quote(image)}")
    if runtime is not None and runtime != "none" and image_value is MISSING:
        c.add(image_path, f'required with runtime = "{runtime}"')
    if runtime == "none" and image is not None:
        engines = ", ".join(f"'{r}'" for r in CONTAINER_RUNTIMES if r != "none")
        c.add(runtime_path, f"is 'none' (the default), so container.image would not be "
                            f"used; choose one of {engines}")
    mounts = _mounts(c, *c.get(table, CONTAINER, "mounts"))
    gpus = c.value(table, CONTAINER, "gpus")
    c.unknown_keys(table, CONTAINER)
    return ContainerSpec(runtime or "none", image, mounts, gpus)


def _mounts(c: Checker, value: Any, path: str) -> tuple[MountSpec, ...]:
    if value is MISSING:
        return ()
    if not isinstance(value, list):
        expected = 'must be an array of "host:container[:ro]" strings'
        c.add(path, f"{expected}, got {describe(value)}")
        return ()
    mounts: list[MountSpec] = []
    targets: dict[str, str] = {}
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        text = c.string(item, where, nonempty=True)
        if text is None:
            continue
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts[:2]):
            c.add(where, f'must be "host:container" or "host:container:ro", got {quote(text)}')
            continue
        if len(parts) == 3 and parts[2] not in MOUNT_MODES:
            c.add(where, f"mode must be 'ro' or 'rw', got {quote(parts[2])}"
                         + suggest(parts[2], MOUNT_MODES))
            continue
        host, inside = parts[0], parts[1]
        if not host.startswith("/") or not inside.startswith("/"):
            c.add(where, f"both paths must be absolute, got {quote(text)}")
            continue
        inside = "/" + "/".join(p for p in inside.split("/") if p not in ("", "."))
        if inside in targets:
            c.add(where, f"container path {quote(inside)} is also mounted by {targets[inside]}")
            continue
        targets[inside] = where
        mounts.append(MountSpec(host, inside, len(parts) == 3 and parts[2] == "ro"))
    return tuple(mounts)


def check_code(c: Checker, table: Table | None) -> CodeSpec:
    if table is None:
        return CodeSpec(None)
    value, path = c.get(table, CODE, "path")
    raw = c.described(value, path, CODE.field("path"))
    resolved = None if raw is None else c.local_path(raw, path, directory=True)
    c.unknown_keys(table, CODE)
    return CodeSpec(resolved)


def check_inputs(c: Checker, table: Table | None) -> tuple[InputSpec, ...]:
    items: list[InputSpec] = []
    users: dict[str, str] = {}
    for key, value in (table or {}).items():
        path = join("inputs", key)
        raw = c.string(key, path, nonempty=True)
        source = None if raw is None else c.local_path(raw, path, False)
        dest = _dest(c, value, path)
        if dest is not None and dest in users:
            c.add(path, f"destination {quote(dest)} is also used by {users[dest]}")
        elif dest is not None:
            users[dest] = path
            if source is not None:
                items.append(InputSpec(source, dest))
    return tuple(sorted(items, key=lambda item: item.dest))


def _dest(c: Checker, value: Any, path: str) -> str | None:
    text = c.string(value, path, nonempty=True)
    if text is None:
        return None
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if text.startswith("/"):
        return c.add(path, f"destination must be relative, got {quote(text)}")
    if ".." in parts:
        return c.add(path, f"destination must not contain '..': {quote(text)}")
    if not parts:
        return c.add(path, f"destination must name a file, got {quote(text)}")
    return "/".join(parts)
