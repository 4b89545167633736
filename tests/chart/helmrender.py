"""One way to render the chart in tests: the real Helm engine in process, or a real Helm 3 binary.

`render(values, release, namespace, kube_version)` runs Helm 4's engine through helm-python-sdk
(pinned 0.2.2; `kube_version` and `api_versions` go through its private `_native` render call, the
only way that release exposes them). `values` is one values map or a list of maps and YAML files,
deep-merged in order exactly as `helm -f a -f b` merges them (a later file wins, a null is kept and
then deletes the chart default). With `helm=<path>` the same render runs `helm template`.
Both return a `Rendered`: the text of every template and the parsed objects.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from generator.values import helmvalues

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "chart"
CHART_NAME = yaml.safe_load((CHART / "Chart.yaml").read_text())["name"]
DEFAULT_RELEASE = "consul"
DEFAULT_NAMESPACE = "consul"
DEFAULT_KUBE_VERSION = "1.29.0"

ValuesSource = Mapping[str, Any] | str | Path


class RenderError(Exception):
    """Helm refused to render: a `fail`, a schema violation, a template error."""


@dataclass
class Rendered:
    files: dict[str, str]  # "templates/x.yaml" -> rendered text (NOTES.txt included)
    _docs: dict[str, list[dict]] = field(default_factory=dict, repr=False)

    def docs(self, template: str | None = None) -> list[dict]:
        """Parsed objects of one template (or of all templates, in file order)."""
        names = [template_path(template)] if template else sorted(self.files)
        out: list[dict] = []
        for name in names:
            if name not in self._docs:
                text = self.files.get(name, "")
                if name.endswith(".txt"):
                    self._docs[name] = []
                    continue
                self._docs[name] = [d for d in yaml.safe_load_all(text) if d is not None]
            out.extend(self._docs[name])
        return out

    @property
    def objects(self) -> list[dict]:
        return self.docs()

    def get(self, kind: str, name: str | None = None) -> dict:
        found = [o for o in self.objects if o.get("kind") == kind and (name is None or o["metadata"]["name"] == name)]
        if len(found) != 1:
            raise LookupError(f"expected one {kind} {name or ''}, found {len(found)}: {[o['metadata']['name'] for o in found]}")
        return found[0]

    def webhook(self) -> dict:
        """The injector webhook's Deployment (the chart also runs the endpoints controller's)."""
        found = [o for o in self.objects if o.get("kind") == "Deployment"
                 and o["metadata"].get("labels", {}).get("component") == "connect-injector"]
        if len(found) != 1:
            raise LookupError(f"expected one webhook Deployment, found {len(found)}")
        return found[0]

    def kinds(self) -> list[str]:
        return sorted(o["kind"] for o in self.objects)

    @property
    def notes(self) -> str:
        return self.files.get("templates/NOTES.txt", "")


def template_path(name: str) -> str:
    return name if name.startswith("templates/") else f"templates/{name}"


def merge_values(*sources: ValuesSource) -> dict:
    """Deep-merge values maps and YAML files in order, as several `helm -f` do (nulls kept)."""
    out: dict = {}
    for source in sources:
        data = source if isinstance(source, Mapping) else (yaml.safe_load(Path(source).read_text()) or {})
        out = helmvalues.merge(out, dict(data))
    return out


def _normalize(values: ValuesSource | Sequence[ValuesSource] | None) -> dict:
    if values is None:
        return {}
    if isinstance(values, (Mapping, str, Path)):
        return merge_values(values)
    return merge_values(*values)


def render(
    values: ValuesSource | Sequence[ValuesSource] | None = None,
    release: str = DEFAULT_RELEASE,
    namespace: str = DEFAULT_NAMESPACE,
    kube_version: str = DEFAULT_KUBE_VERSION,
    *,
    api_versions: Iterable[str] = (),
    is_upgrade: bool = False,
    helm: str | None = None,
    notes: bool = False,
) -> Rendered:
    """Render the chart: Helm 4's engine in this process, or the Helm binary `helm` if given.

    The in-process render always includes NOTES.txt; `helm template` leaves it out, so with a
    binary `notes=True` renders it through an extra template in a copy of the chart.
    """
    merged = _normalize(values)
    kube_version = kube_version.removeprefix("v")
    if helm:
        return _render_binary(helm, merged, release, namespace, kube_version, list(api_versions), is_upgrade, notes)
    from helm_python import Chart, _native
    from helm_python.errors import HelmError

    opts: dict[str, Any] = {
        "name": release,
        "namespace": namespace,
        "kube_version": f"v{kube_version}",
        "api_versions": list(api_versions),
        "is_install": not is_upgrade,
        "is_upgrade": is_upgrade,
        "revision": 2 if is_upgrade else 1,
    }
    try:
        with Chart.load(CHART) as chart:
            raw = _native.call_string("helm_render", chart._raw(), json.dumps(merged), json.dumps(opts))
    except HelmError as exc:
        raise RenderError(str(exc)) from None
    prefix = f"{CHART_NAME}/"
    return Rendered({name.removeprefix(prefix): text for name, text in json.loads(raw).items()})


_SOURCE = re.compile(r"^# Source: " + re.escape(CHART_NAME) + r"/(\S+)\n", re.M)


def helm_env() -> dict[str, str]:
    """Environment for a Helm binary: its caches and config in a scratch directory."""
    scratch = Path(tempfile.gettempdir()) / "chart-tests-helm-home"
    env = dict(os.environ)
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(scratch / var.lower())
    env.pop("KUBECONFIG", None)
    return env


_NOTES_CAPTURE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: notes-capture
data:
  notes: {{ include (print $.Template.BasePath "/NOTES.txt") . | quote }}
"""


def _render_binary(helm: str, values: dict, release: str, namespace: str, kube_version: str,
                   api_versions: list[str], is_upgrade: bool, notes: bool) -> Rendered:
    """`helm template` (templates that render nothing are left out)."""
    with tempfile.TemporaryDirectory() as tmp:
        chart = CHART
        if notes:
            chart = Path(tmp) / CHART_NAME
            shutil.copytree(CHART, chart)
            (chart / "templates" / "zz-notes-capture.yaml").write_text(_NOTES_CAPTURE)
        rendered = _helm_template(helm, chart, values, release, namespace, kube_version, api_versions, is_upgrade)
    capture = rendered.files.pop("templates/zz-notes-capture.yaml", None)
    if capture is not None:
        rendered.files["templates/NOTES.txt"] = yaml.safe_load(capture.removesuffix("---\n"))["data"]["notes"]
    return rendered


def _helm_template(helm: str, chart: Path, values: dict, release: str, namespace: str, kube_version: str,
                   api_versions: list[str], is_upgrade: bool) -> Rendered:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(values, f)
    try:
        cmd = [helm, "template", release, str(chart), "--namespace", namespace, "-f", f.name,
               "--kube-version", kube_version]
        for api in api_versions:
            cmd += ["--api-versions", api]
        if is_upgrade:
            cmd.append("--is-upgrade")
        proc = subprocess.run(cmd, capture_output=True, text=True, env=helm_env(), timeout=120)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    files: dict[str, str] = {}
    parts = _SOURCE.split(proc.stdout)
    for name, text in zip(parts[1::2], parts[2::2]):
        files[name] = files.get(name, "") + text.rstrip().removesuffix("---").rstrip() + "\n---\n"
    return Rendered(files)
