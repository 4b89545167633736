"""ProxyDefaults → Consul `proxy-defaults`: the mesh-wide proxy configuration (one resource,
named `global`, in the cluster)."""

from __future__ import annotations

import json
from typing import Any

import generator.configentries.fields as F
import generator.configentries.shared as S
from generator.configentries.errors import FieldError, GoValue, invalid
from generator.configentries.kind import DEFAULT_NAMESPACE, ConsulMeta, Kind, spec_of

SPEC = F.obj("spec", "ProxyDefaultsSpec defines the desired state of ProxyDefaults", struct=True, fields=(
    F.anyjson("config", "Config is an arbitrary map of configuration values used by Connect proxies. Any values that "
              "your proxy allows can be configured globally here. Supports JSON config values. See "
              "https://www.consul.io/docs/connect/proxies/envoy#configuration-formatting"),
    S.mesh_gateway("MeshGateway controls the default mesh gateway configuration for this service."),
    S.expose(),
    S.transparent_proxy(),
    S.mode(),
))

_GO_JSON_TYPES = {str: "string", list: "array", bool: "bool", int: "number", float: "number"}


def _validate_config(spec: dict) -> list[FieldError]:
    """`spec.config` must decode into a map (the schema says object; the offline checker may see
    anything). The bad value prints as Go's `%#v` of the raw bytes, `json.RawMessage{0x31}`."""
    config: Any = spec.get("config")
    if config is None or isinstance(config, dict):
        return []
    raw = json.dumps(config, separators=(",", ":")).encode()
    value = GoValue("json.RawMessage{" + ", ".join(f"0x{b:x}" for b in raw) + "}")
    go_type = _GO_JSON_TYPES.get(type(config), "value")
    return [invalid("spec.config", value, "must be valid map value: json: cannot unmarshal "
                    f"{go_type} into Go value of type map[string]interface {{}}")]


def validate(resource: dict, meta: ConsulMeta) -> list[FieldError]:
    spec = spec_of(resource)
    return (S.validate_mesh_gateway(spec.get("meshGateway"), "spec.meshGateway")
            + S.validate_transparent_proxy(spec.get("transparentProxy"), "spec.transparentProxy")
            + S.validate_mode(spec, "spec.mode")
            + _validate_config(spec)
            + S.validate_expose(spec.get("expose"), "spec.expose"))


KIND = Kind(kind="ProxyDefaults", plural="proxydefaults", singular="proxydefaults", consul_kind="proxy-defaults",
            spec=SPEC, validate_spec=validate, global_resource=True, mirroring_ns_of=lambda r: DEFAULT_NAMESPACE,
            consul_only=("Mode",), fixed_name="global")
