"""The ten CRDs in chart/templates are generated from generator/configentries and are the
reference's (compared field for field with consul-k8s v0.37.0's when its git mirror is present),
render with the chart's labels when controller.enabled, and pass Kubernetes' own CRD schema."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from generator import configentries as ce
from generator.tools import crds

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "chart"))
import helmrender  # noqa: E402
from conftest import helm_binary  # noqa: E402

MIRROR = Path("/work/.mirror/hashicorp+consul-k8s/repo")
REFERENCE_TAG = "v0.37.0"


@pytest.mark.parametrize("kind", ce.ALL, ids=lambda k: k.kind)
def test_crd_files_are_generated_from_the_data(kind):
    assert crds.path_of(kind).read_text() == crds.render(kind), \
        f"{crds.path_of(kind).name} is stale: run `python -m generator.tools.crds`"


def test_check_mode():
    proc = subprocess.run([sys.executable, "-m", "generator.tools.crds", "--check"], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_check_mode_names_a_stale_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(crds, "TEMPLATES", tmp_path)
    assert crds.main(["--check"]) == 1
    assert "crd-servicedefaults.yaml" in capsys.readouterr().err
    assert crds.main([]) == 0 and crds.main(["--check"]) == 0


def _reference_crd(plural: str) -> dict:
    text = subprocess.run(["git", f"--git-dir={MIRROR}", "show",
                           f"{REFERENCE_TAG}:charts/consul/templates/crd-{plural}.yaml"],
                          capture_output=True, text=True, check=True).stdout
    return yaml.safe_load("\n".join(line for line in text.splitlines() if "{{" not in line))


@pytest.mark.skipif(not MIRROR.exists(), reason="the consul-k8s git mirror is not on this machine")
@pytest.mark.parametrize("kind", ce.ALL, ids=lambda k: k.kind)
def test_crd_is_the_references_field_for_field(kind):
    """Group, names, scope, printer columns, subresources and the whole openAPIV3Schema
    (descriptions included) equal the reference chart's CRD."""
    assert ce.crd(kind)["spec"] == _reference_crd(kind.plural)["spec"]


@pytest.fixture(scope="module")
def crd_chart(tmp_path_factory) -> Path:
    """A copy of the chart with only its helpers and the CRD templates, so that these render on
    their own (controller.enabled is refused, or wired, by other templates owned elsewhere)."""
    chart = tmp_path_factory.mktemp("chart") / helmrender.CHART_NAME
    shutil.copytree(helmrender.CHART, chart)
    for template in (chart / "templates").iterdir():
        if template.is_file() and not (template.name.startswith("_") or template.name.startswith("crd-")):
            template.unlink()
    return chart


@pytest.fixture(params=["helm4-in-process", "helm3-binary"])
def helm(request):
    if request.param == "helm4-in-process":
        return None
    binary = helm_binary()
    if binary is None:
        pytest.skip("HELM is not set")
    return binary


def _render(chart: Path, values: dict, helm, monkeypatch) -> list[dict]:
    monkeypatch.setattr(helmrender, "CHART", chart)
    rendered = helmrender.render(values, helm=helm)
    return [o for o in rendered.objects if o.get("kind") == "CustomResourceDefinition"]


def test_crds_render_only_when_the_controller_is_enabled(crd_chart, helm, monkeypatch):
    assert _render(crd_chart, {}, helm, monkeypatch) == []
    objs = _render(crd_chart, {"controller": {"enabled": True}}, helm, monkeypatch)
    assert sorted(o["metadata"]["name"] for o in objs) == sorted(f"{k.plural}.consul.hashicorp.com" for k in ce.ALL)
    for obj in objs:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "controller"
        assert labels["app.kubernetes.io/part-of"] == "consul"
        kind = ce.BY_PLURAL[obj["spec"]["names"]["plural"]]
        assert obj["spec"] == ce.crd(kind)["spec"]


@pytest.mark.parametrize("kube", ["1.29", "1.33"])
def test_each_crd_validates_as_a_kubernetes_crd(crd_chart, kube, monkeypatch):
    for obj in _render(crd_chart, {"controller": {"enabled": True}}, None, monkeypatch):
        kubernetes_validate.validate(obj, kube, strict=True)
