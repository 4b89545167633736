"""The injected objects as Jinja templates: loading, overriding by name, compiling, rendering.

Templates are the product's public surface, so they are plain YAML files in `templates/` and any of
them can be replaced from values (`connectInject.templates.<name>`). Everything is compiled when the
Config is loaded and rendered once against a sample pod, so a broken template stops the program at
start-up with the template's name and line, never at the first pod.

The context is small and documented (README "Templates"):
  config  the Config (images, resources, auth method, partition, CA, log settings)
  plan    the per-pod Plan (tproxy, metrics, upstreams, namespaces, envoy args and resources)
  pod     the pod as received (read-only)
  values  the merged chart values
  const   fixed numbers: envoy_uid 5995, copy_uid 5996, volume name and mount path
Filters: `shell_quote` (for every value that reaches the init script) and `tojson`.
Every template, built-in or from values, renders in Jinja's immutable sandbox.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Mapping

import jinja2
import jinja2.sandbox
import yaml
from jinja2.sandbox import ImmutableSandboxedEnvironment

from generator.base import paths
from generator.base.podcontract import TEMPLATE_CONSTANTS
from generator.base.errors import ConfigError, InjectorFault, PodError

if TYPE_CHECKING:
    from generator.inject.plan import Plan
    from generator.values.config import Config

BUILTIN: dict[str, str] = {
    "consul-connect-inject-data": "consul-connect-inject-data.yaml.j2",
    "copy-consul-bin": "copy-consul-bin.yaml.j2",
    "consul-connect-inject-init-script": "consul-connect-inject-init-script.sh.j2",
    "consul-connect-inject-init": "consul-connect-inject-init.yaml.j2",
    "envoy-sidecar": "envoy-sidecar.yaml.j2",
    "consul-sidecar": "consul-sidecar.yaml.j2",
}
CONST = TEMPLATE_CONSTANTS
_SHELL_SPECIAL = re.compile(r'([\\"$`])')
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def shell_quote(value: Any) -> str:
    """Double-quote for sh with \\ " $ ` escaped: `auth-method` → `"auth-method"`, nothing expands."""
    return '"' + _SHELL_SPECIAL.sub(r"\\\1", str(value)) + '"'


# Characters YAML does not allow unescaped (C1 controls, surrogates, U+FFFE/U+FFFF); JSON leaves them raw.
# NEL, U+2028 and U+2029 are line breaks to YAML, which would fold them: escape them too.
_NOT_YAML_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _tojson(value: Any) -> str:
    """JSON that is also a valid YAML scalar, whatever characters a pod author wrote."""
    text = json.dumps(value, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda m: "\\u%04x" % ord(m.group()), text)


# Rendered text carries pod data (envoy-extra-args, exclusion lists), so the cache is bounded in
# bytes, not only in entries: texts above _CACHED_TEXT_MAX are parsed each time, so the cache holds
# at most _CACHE_ENTRIES * _CACHED_TEXT_MAX characters of text (and their small parsed objects).
_CACHE_ENTRIES = 1024
_CACHED_TEXT_MAX = 8 * 1024


@lru_cache(maxsize=_CACHE_ENTRIES)
def _parse_cached(text: str) -> Any:
    return yaml.load(text, Loader=_YAML_LOADER)


def _parse_yaml(text: str) -> Any:
    """Rendered text → object. Pods of one workload render the same text, so parsing is cached;
    callers treat the result as read-only."""
    if len(text) > _CACHED_TEXT_MAX:
        return yaml.load(text, Loader=_YAML_LOADER)
    return _parse_cached(text)


@dataclass(frozen=True)
class Injected:
    """What injection appends to the pod (shared, cached objects: never mutate them)."""

    volumes: tuple[dict, ...]
    init_containers: tuple[dict, ...]
    containers: tuple[dict, ...]
    size: int = 0  # characters of rendered text: about the JSON size of what is added


def context(config: Config, plan: Plan, pod: Mapping[str, Any]) -> dict[str, Any]:
    """The documented template context (see the module docstring)."""
    return {"config": config, "plan": plan, "pod": pod, "values": config.values, "const": CONST}


class _Sandbox(ImmutableSandboxedEnvironment):
    """Templates come from values files, which CI pipelines lint from contributors: they render
    sandboxed (no `__` attributes, no mutation of the context) and cannot reach the template
    machinery itself through `config`.

    Jinja's verdict on an attribute depends only on the object's type and the attribute's name
    (and ours on the value's type), so it is cached: the checks otherwise cost more than the
    rest of a render. The cache is bounded (`attr` could be given names from pod data)."""

    _CACHE_MAX = 1024
    # `'a' * 4000000000` and `9 ** 9 ** 9` would take the process's memory or CPU at load time
    # (check-values in CI); results past _MAX_PRODUCT characters or items are refused.
    intercepted_binops = frozenset({"*", "**"})
    _MAX_PRODUCT = 1_000_000

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._verdicts: dict[tuple[type, str, type], bool] = {}

    def getattr(self, obj: Any, attribute: str) -> Any:
        """Fast path for a data attribute already judged safe (the checks after it in Jinja only
        wrap callables such as str.format); anything else takes Jinja's full path."""
        try:
            value = getattr(obj, attribute)
        except AttributeError:
            return super().getattr(obj, attribute)
        if not callable(value) and self._verdicts.get((type(obj), attribute, type(value))):
            return value
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(left, (int, float)) and isinstance(right, (int, float)) and abs(right) > 64 and abs(left) > 1:
                raise jinja2.sandbox.SecurityError(f"{left!r} ** {right!r} is too large for a template")
        elif isinstance(left, (str, list, tuple)) or isinstance(right, (str, list, tuple)):
            seq, times = (left, right) if isinstance(left, (str, list, tuple)) else (right, left)
            if isinstance(times, int) and len(seq) * times > self._MAX_PRODUCT:
                raise jinja2.sandbox.SecurityError(f"a {type(seq).__name__} repeated {times} times is too large for a template")
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        key = (type(obj), attr, type(value))
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = not isinstance(value, (Templates, jinja2.Environment, jinja2.Template)) and super().is_safe_attribute(obj, attr, value)
            if len(self._verdicts) < self._CACHE_MAX:
                self._verdicts[key] = verdict
        return verdict


class Templates:
    """Compiled templates: the built-ins, with any of them replaced by `connectInject.templates`."""

    def __init__(self, overrides: Mapping[str, str]):
        self.overrides = dict(overrides)
        self.env = _Sandbox(
            loader=jinja2.FunctionLoader(self._source),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            autoescape=False,
        )
        self.env.filters["shell_quote"] = shell_quote
        self.env.filters["tojson"] = _tojson
        problems = []
        self.compiled: dict[str, jinja2.Template] = {}
        for name in [*BUILTIN, *[n for n in self.overrides if n not in BUILTIN]]:
            try:
                self.compiled[name] = self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                problems.append(f"{self._where(name)}: line {exc.lineno}: {exc.message}")
        if problems:
            raise ConfigError(problems)

    def _source(self, name: str) -> tuple[str, str, Callable[[], bool]] | None:
        if name in self.overrides:
            return self.overrides[name], name, lambda: True
        if name in BUILTIN:
            path = paths.TEMPLATES_DIR / BUILTIN[name]
            return path.read_text(encoding="utf-8"), str(path), lambda: True
        return None

    def _where(self, name: str) -> str:
        if name in self.overrides:
            return f"connectInject.templates.{name}"
        return f"template {name} ({paths.TEMPLATES_DIR / BUILTIN[name]})"

    def text(self, name: str, context: Mapping[str, Any]) -> str:
        """Render one template to text; a failure is an InjectorFault naming template and line."""
        try:
            return self.compiled[name].render(context)
        except Exception as exc:  # any error inside a template is the template's
            raise InjectorFault(f"{self._where(name)}{_template_line(exc, name)}: {type(exc).__name__}: {exc}") from None

    def object(self, name: str, context: Mapping[str, Any], sizes: list[int] | None = None) -> Any:
        """Render one template and parse its YAML (cached by text; do not mutate the result)."""
        text = self.text(name, context)
        if sizes is not None:
            sizes.append(len(text))
        try:
            obj = _parse_yaml(text)
        except yaml.YAMLError as exc:
            raise InjectorFault(f"{self._where(name)} rendered invalid YAML: {' '.join(str(exc).split())}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            raise InjectorFault(f"{self._where(name)} must render a YAML map with a name, got {type(obj).__name__}")
        return obj

    @property
    def extras(self) -> tuple[str, ...]:
        """User-named templates (not replacing a built-in), selectable per pod by annotation."""
        return tuple(name for name in self.overrides if name not in BUILTIN)

    def inject(self, config: Config, plan: Plan, pod: Mapping[str, Any]) -> "Injected":
        """The objects to add to `pod`, in the order the reference adds them, then the extras."""
        ctx = context(config, plan, pod)
        sizes: list[int] = []
        sidecars = [self.object("envoy-sidecar", ctx, sizes)]
        if plan.merging:
            sidecars.append(self.object("consul-sidecar", ctx, sizes))
        volumes = [self.object("consul-connect-inject-data", ctx, sizes)]
        init = [self.object("copy-consul-bin", ctx, sizes), self.object("consul-connect-inject-init", ctx, sizes)]
        # Native sidecars (Kubernetes 1.29+) start after the init script wrote Envoy's bootstrap.
        containers = [] if plan.native_sidecar else sidecars
        if plan.native_sidecar:
            init.extend(sidecars)
        for name in plan.extra_templates:
            fragment = self.fragment(name, ctx, sizes)
            volumes.extend(fragment.get("volumes") or ())
            init.extend(fragment.get("initContainers") or ())
            containers.extend(fragment.get("containers") or ())
        return Injected(volumes=tuple(volumes), init_containers=tuple(init), containers=tuple(containers), size=sum(sizes))

    def fragment(self, name: str, context: Mapping[str, Any], sizes: list[int] | None = None) -> dict:
        """Render an extra template: a map of `containers`, `initContainers` and `volumes` lists.

        Its failures are answered with 400 naming the template (the pod asked for it)."""
        try:
            text = self.compiled[name].render(context)
            if sizes is not None:
                sizes.append(len(text))
            obj = _parse_yaml(text)
        except yaml.YAMLError as exc:
            raise PodError(f"{self._where(name)} rendered invalid YAML: {' '.join(str(exc).split())}") from None
        except Exception as exc:
            raise PodError(f"{self._where(name)}{_template_line(exc, name)}: {type(exc).__name__}: {exc}") from None
        problem = _fragment_problem(obj)
        if problem:
            raise PodError(f"{self._where(name)}: {problem}")
        return obj

    def check(self, config: Config) -> None:
        """Render every template against sample pods so runtime errors surface at start-up."""
        from generator.inject.samples import sample_contexts

        problems = []
        for plan, pod in sample_contexts(config):
            try:
                self.inject(config, plan, pod)
            except InjectorFault as exc:
                problems.append(str(exc))
            for name in self.extras:
                try:
                    self.fragment(name, context(config, plan, pod))
                except PodError as exc:
                    problems.append(str(exc))
        if problems:
            raise ConfigError(sorted(set(problems)))


_FRAGMENT_KEYS = {"containers": ("name", "image"), "initContainers": ("name", "image"), "volumes": ("name",)}


def _fragment_problem(obj: Any) -> str | None:
    """What is wrong with an extra template's output, or None."""
    if not isinstance(obj, dict) or not obj or set(obj) - set(_FRAGMENT_KEYS):
        return f"must render a YAML map with any of {', '.join(_FRAGMENT_KEYS)} (lists), got {_describe(obj)}"
    for key, required in _FRAGMENT_KEYS.items():
        items = obj.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return f"{key}: expected a list, got {_describe(items)}"
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return f"{key}[{index}]: expected a map, got {_describe(item)}"
            for field in required:
                if not isinstance(item.get(field), str) or not item[field]:
                    return f"{key}[{index}].{field}: required (a non-empty string)"
    return None


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "a map with keys " + ", ".join(map(str, value)) if value else "an empty map"
    return type(value).__name__


def _template_line(exc: BaseException, name: str) -> str:
    """Jinja rewrites tracebacks so template frames carry the template's own line numbers."""
    tb, line = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in (name, str(paths.TEMPLATES_DIR / BUILTIN.get(name, ""))):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f": line {line}" if line else ""
