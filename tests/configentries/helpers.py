"""Resources as users write them, and the reference tests' Consul-side fixtures."""

from __future__ import annotations

from typing import Any

from generator import configentries as ce

DC_META = {"consul.hashicorp.com/source-datacenter": "datacenter", "external-source": "kubernetes"}


def resource(kind: str, name: str, spec: dict | None = None, namespace: str = "default", **meta: Any) -> dict:
    """A consul.hashicorp.com/v1alpha1 object (spec omitted when None, as a user may)."""
    out: dict[str, Any] = {"apiVersion": ce.API_VERSION, "kind": kind,
                           "metadata": {"name": name, "namespace": namespace, **meta}}
    if spec is not None:
        out["spec"] = spec
    return out


def message(resource_: dict, meta: ce.ConsulMeta | None = None) -> str:
    """The webhook's validation message for `resource_` ("" when valid)."""
    try:
        ce.validate(ce.kind_of(resource_), resource_, meta or ce.ConsulMeta())
    except ce.ConfigEntryInvalid as err:
        return err.message
    return ""
