"""Where the chart defaults, the values schema and the built-in templates live.

In a checkout (and an editable install) they sit beside the package; the webhook image copies the
same files. `CONNECT_INJECT_HOME` points elsewhere when they are installed in another place.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME = Path(os.environ.get("CONNECT_INJECT_HOME") or Path(__file__).resolve().parents[2])
CHART_VALUES = HOME / "chart" / "values.yaml"
VALUES_SCHEMA = HOME / "values-schema.yaml"
TEMPLATES_DIR = HOME / "templates"
CHART_KEYS = Path(__file__).resolve().parents[1] / "data" / "consul-chart-keys.tsv"  # package data
