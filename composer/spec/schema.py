"""The job spec's JSON Schema (``composer schema``, the committed ``composer.schema.json``),
made from the field descriptions, for editors that check TOML against a schema (taplo /
Even Better TOML: ``#:schema ./composer.schema.json`` at the top of job.toml).

The schema says what an editor can check while one types (keys, types, choices, bounds,
patterns, which target allows which section); ``composer validate`` remains the
authority (paths inside the job directory, sizes and durations in range, and so on).
"""

from __future__ import annotations

import json
from typing import Any

from composer.spec.basics import registered_targets
from composer.spec.fields import Section
from composer.spec.load import SCHEMA, target_sections

DRAFT = "http://json-schema.org/draft-07/schema#"


def json_schema() -> dict[str, Any]:
    sections = {**SCHEMA, **target_sections()}
    return {
        "$schema": DRAFT,
        "title": "composer job spec (job.toml)",
        "description": "A job spec: the cluster to create, the command to launch, the files "
                       "to ship and bring back. docs/spec.md describes every field.",
        "type": "object",
        "properties": {name: section_schema(s) for name, s in sections.items()},
        "required": [name for name, s in sections.items() if s.required],
        "additionalProperties": False,
        "allOf": _target_rules(sections),
    }


def section_schema(section: Section) -> dict[str, Any]:
    if section.open:
        return {"description": section.title, "type": "object",
                "additionalProperties": dict(section.values)}
    out: dict[str, Any] = {
        "description": section.title,
        "type": "object",
        "properties": {f.key: f.json_schema() for f in section.fields},
        "additionalProperties": False,
    }
    if section.required_keys:
        out["required"] = list(section.required_keys)
    out.update(section.extra)
    return out


def _target_rules(sections: dict[str, Section]) -> list[dict[str, Any]]:
    """Per target: its node limit, its section required; a target section only with it."""
    rules = []
    for name, target in registered_targets().items():
        chosen = {"properties": {"cluster": {"properties": {"target": {"const": name}},
                                             "required": ["target"]}},
                  "required": ["cluster"]}
        then: dict[str, Any] = {
            "properties": {"cluster": {"properties": {"nodes": {"maximum": target.max_nodes}}}}
        }
        if target.section is not None:
            then["required"] = [target.section.name]
        rules.append({"if": chosen, "then": then})
    for name, section in sections.items():
        if section.target is not None:
            rules.append({"if": {"required": [name]}, "then": {"properties": {"cluster": {
                "properties": {"target": {"const": section.target}}}}}})
    return rules


def schema_text() -> str:
    """The schema as ``composer schema`` prints it and ``composer.schema.json`` holds it."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
