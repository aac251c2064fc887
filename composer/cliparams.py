"""Command-line values converted without pydantic where typer's answer is known.

typer converts every parameter's value through a pydantic ``TypeAdapter``; importing
pydantic and building the adapters costs a command such as ``composer validate`` about a
third of its start-up. composer's parameters are plain ``str``, ``bool``, ``Path`` and
``list[str]``, and for the values a command line gives them (a ``str``, a ``bool``, a
tuple of ``str``) the result is fixed: the same string, the same flag, ``Path(value)``
through typer's own path checks, a list of the strings. ``install`` puts a runtime
parameter in front of typer's that answers exactly those cases itself and hands every
other annotation or value to typer's own (built on first need), so nothing changes but
the start-up. When typer's internals are not the ones this was written against,
``install`` does nothing and typer works as it always does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

SIMPLE = (bool, str, Path)


def _plain(value: Any) -> bool:
    return type(value) is str


def quick_value(annotation: Any, value: Any) -> tuple[bool, Any]:
    """(True, the converted value) where the result is known without pydantic; (False,
    None) where typer's own conversion must decide (or refuse) it. A ``Path`` is only
    answered here when its text is already normal (``str(Path(v)) == v``), so that any
    message typer's path checks write names the value exactly as given."""
    if annotation is bool:
        return (True, value) if type(value) is bool else (False, None)
    if annotation is str:
        return (True, value) if _plain(value) else (False, None)
    if annotation is Path:
        if _plain(value) and str(Path(value)) == value:
            return True, Path(value)
        return False, None
    if (get_origin(annotation) is list and get_args(annotation) == (str,)
            and isinstance(value, (list, tuple)) and all(_plain(v) for v in value)):
        return True, list(value)
    return False, None


def install() -> bool:
    """Put the quick conversion in front of typer's; False (and nothing changed) when
    typer is not laid out as expected."""
    try:
        from typer import _coercion, _param_types, core
        from typer._coercion import RuntimeParam
    except ImportError:
        return False
    original = getattr(core, "build_runtime_param", None)
    if original is None or getattr(original, "composer_quick", False):
        return original is not None
    coerce_path = getattr(_param_types, "coerce_cli_path", None)
    if coerce_path is None or not hasattr(_coercion, "TypeDescriptor"):
        return False

    @dataclass(frozen=True)
    class QuickRuntimeParam(RuntimeParam):  # type: ignore[misc]
        """Answers the known cases; typer's own runtime parameter answers the rest."""

        descriptor: Any = None
        _slow: list[Any] = field(default_factory=list)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            known, converted = quick_value(self.annotation, value)
            if known:
                if self.annotation is Path:
                    return coerce_path(converted, self.parameter_info, path_type=Path,
                                       param=param, ctx=ctx)
                return converted
            if not self._slow:
                self._slow.append(original(self.descriptor))
            return self._slow[0]._coerce_value(value, param=param, ctx=ctx)

    def build(descriptor: Any) -> Any:
        info = descriptor.parameter_info
        annotation = descriptor.annotation
        simple = annotation in SIMPLE or (get_origin(annotation) is list
                                          and get_args(annotation) == (str,))
        if (not simple or descriptor.file_annotation is not None
                or getattr(info, "parser", None) is not None
                or (annotation is Path and getattr(info, "path_type", None) is not None)):
            return original(descriptor)
        return QuickRuntimeParam(parameter_info=info, annotation=annotation,
                                 descriptor=descriptor)

    build.composer_quick = True  # type: ignore[attr-defined]
    core.build_runtime_param = build
    return True
