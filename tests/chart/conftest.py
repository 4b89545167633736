"""Chart tests: this directory's helpers on sys.path, and the optional real Helm binary ($HELM)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def helm_binary() -> str | None:
    """$HELM (set by `make test` to the fetched Helm 3 binary), or None."""
    helm = os.environ.get("HELM")
    if helm and not os.access(helm, os.X_OK):
        raise pytest.UsageError(f"HELM={helm} is not an executable file")
    return helm or None


@pytest.fixture(params=["helm4-in-process", "helm3-binary"])
def helm(request) -> str | None:
    """Each test using this runs on Helm 4's engine in process, then on the Helm binary in $HELM."""
    if request.param == "helm4-in-process":
        return None
    binary = helm_binary()
    if binary is None:
        pytest.skip("HELM is not set: `make test` fetches Helm 3 and sets it (scripts/fetch_helm.py)")
    return binary
