"""The values layer: chart values → one frozen settings section per component.

`generator.values.load(...)` (config.load_settings) merges and validates values as Helm and the
chart do and returns `Settings`: `.injector` (the pod engine's `Config`), `.endpoints` (the
endpoints controller's) and `.controller` (the config-entry controller's). It compiles no
templates; `generator.inject.engine.load()` does that on top of the injector's section.

Modules: source (files, merge, the chart-default-aware reader), schema (values-schema.yaml and
the Consul chart keys), rules (the chart's cross-key `fail` guards), shared (what several
components derive alike), injector, controllers (the sections), config (load), helmvalues
(Helm's merge and --set), chartkeys (every Consul chart version's keys).
"""

from generator.values.config import ControllerSettings, EndpointsSettings, Settings
from generator.values.config import load_settings as load

__all__ = ["ControllerSettings", "EndpointsSettings", "Settings", "load"]
