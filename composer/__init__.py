"""composer: reproducible ML runs on ephemeral clusters, recorded in git."""

from __future__ import annotations

__version__ = "0.1.0"
# The distribution's name; composer_runs looks for this line to tell this package from
# MosaicML's, which is importable as ``composer`` too.
DISTRIBUTION = "composer-runs"
