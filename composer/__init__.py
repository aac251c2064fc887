"""composer: reproducible ML runs on ephemeral clusters, recorded in git."""

from __future__ import annotations

__version__ = "0.1.0"
