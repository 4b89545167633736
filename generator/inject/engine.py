"""The engine's Config: the validated settings (config.load) with the templates compiled and
self-tested against sample pods (render.Templates).

The values layer (config) knows nothing of templates; this module joins the two, so a broken
template still stops `serve` and `check-values` at start-up with its name and line, and nothing
imports in a circle (config → render → samples → plan → config once did).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

from generator.values import config as config_mod
from generator.values.config import Config
from generator.inject.render import Templates


def load(values_files: Sequence[str | Path] = (), sets: Sequence[str] = (), **options: Any) -> Config:
    """config.load() (same arguments), then the templates: ConfigError naming each problem."""
    settings = config_mod.load(values_files, sets, **options)
    templates = Templates((settings.values.get("connectInject") or {}).get("templates") or {})
    config = dataclasses.replace(settings, templates=templates)
    templates.check(config)
    return config
