"""The job spec: a TOML file describing one run, and its validation.

``load_spec`` and ``parse_spec`` either return a fully resolved, immutable ``Spec``
or raise ``SpecError`` listing every problem found, each at a dotted path such as
``cluster.nodes``. ``expanded`` gives the resolved spec as machine-independent data.

The package, stage by stage:

- ``model``: the ``Spec`` dataclasses that validation returns.
- ``fields``: ``Field`` and ``Section``, the declarative description of every key: the
  one source for the keys each table accepts, the JSON Schema (``schema``) and the field
  tables of docs/spec.md (``docs``).
- ``check``: the checker's primitives (a value, its dotted path, a problem, go on).
- ``basics``, ``files``, ``results``: each core section's fields and its check.
  A target's own section (``[aws]``) lives in its package (``composer/targets/aws/spec.py``)
  and is found through the target registry.
- ``load``: the file, its TOML, the sections in order; ``expanded``.
"""

from composer.spec.basics import LAUNCHERS, PLANNED_TARGETS, registered_targets, target_names
from composer.spec.check import LARGEST_FILE_SIZE
from composer.spec.fields import Field, Section
from composer.spec.files import CONTAINER_RUNTIMES, MOUNT_MODES
from composer.spec.load import SCHEMA, expanded, load_spec, parse_spec, target_sections
from composer.spec.model import (
    DEFAULT_MAX_DURATION,
    DEFAULT_MAX_FILE_SIZE,
    DEFAULT_MAX_LOG_SIZE,
    ClusterSpec,
    CodeSpec,
    ContainerSpec,
    InputSpec,
    JobSection,
    LimitsSpec,
    MountSpec,
    OutputsSpec,
    RecordSpec,
    ReproduceSpec,
    RunSpec,
    Spec,
    StateSpec,
    Tolerance,
)
from composer.spec.results import LONGEST_DURATION, OUTPUT_SOURCES, TOLERANCE_KEYS
from composer.spec.values import NO_LIMIT, output_matches, parse_duration, parse_size

__all__ = [
    "CONTAINER_RUNTIMES", "DEFAULT_MAX_DURATION", "DEFAULT_MAX_FILE_SIZE",
    "DEFAULT_MAX_LOG_SIZE", "LARGEST_FILE_SIZE", "LAUNCHERS", "LONGEST_DURATION", "MOUNT_MODES",
    "NO_LIMIT", "OUTPUT_SOURCES", "PLANNED_TARGETS", "SCHEMA", "TOLERANCE_KEYS", "ClusterSpec",
    "CodeSpec", "ContainerSpec", "Field", "InputSpec", "JobSection", "LimitsSpec", "MountSpec",
    "OutputsSpec", "RecordSpec", "ReproduceSpec", "RunSpec", "Section", "Spec", "StateSpec",
    "Tolerance",
    "expanded", "load_spec", "output_matches", "parse_duration", "parse_size", "parse_spec",
    "registered_targets", "target_names", "target_sections",
]
