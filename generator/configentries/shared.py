"""Blocks several kinds share (mesh gateway, expose, transparent proxy, mode, header modifiers):
their fields once, and their validation rules with the reference's messages."""

from __future__ import annotations

from typing import Any

import generator.configentries.fields as F
from generator.configentries.errors import FieldError, GoValue, invalid
from generator.configentries.gofmt import quote

MESH_GATEWAY_MODES = ("remote", "local", "none", "")
EXPOSE_PROTOCOLS = ("http", "http2")
NAMESPACES_OFF = "Consul Enterprise namespaces must be enabled to set "
PARTITIONS_OFF = "Consul Enterprise Admin Partitions must be enabled to set "

_MODE_DOC = ("Mode can be one of \"direct\" or \"transparent\". \"transparent\" represents that inbound and outbound "
             "application traffic is being captured and redirected through the proxy. This mode does not enable the "
             "traffic redirection itself. Instead it signals Consul to configure Envoy as if traffic is already being "
             "redirected. \"direct\" represents that the proxy's listeners must be dialed directly by the local "
             "application and other proxies. Note: This cannot be set using the CRD and should be set using "
             "annotations on the services that are part of the mesh.")
_TPROXY_DOC = ("TransparentProxy controls configuration specific to proxies in transparent mode. Note: This cannot be "
               "set using the CRD and should be set using annotations on the services that are part of the mesh.")


def mesh_gateway(doc: str) -> F.Field:
    """`meshGateway` (a value struct: Consul always gets `MeshGateway`, `{}` by default); a mode
    other than local/remote/none reaches Consul as "" (the webhook refuses it anyway)."""
    return F.obj("meshGateway", doc, struct=True, fields=(
        F.string("mode", "Mode is the mode that should be used for the upstream connection. One of none, local, "
                 "or remote.", values=("local", "remote", "none")),
    ))


def expose(doc: str = "Expose controls the default expose path configuration for Envoy.") -> F.Field:
    return F.obj("expose", doc, struct=True, fields=(
        F.boolean("checks", "Checks defines whether paths associated with Consul checks will be exposed. This flag "
                  "triggers exposing all HTTP and GRPC check paths registered for the service."),
        F.array("paths", "Paths is the list of paths exposed through the proxy.", F.obj(None, "", struct=True, fields=(
            F.integer("listenerPort", "ListenerPort defines the port of the proxy's listener for exposed paths."),
            F.string("path", 'Path is the path to expose through the proxy, ie. "/metrics".'),
            F.integer("localPathPort", "LocalPathPort is the port that the service is listening on for the given path."),
            F.string("protocol", "Protocol describes the upstream's service protocol. Valid values are \"http\" and "
                     "\"http2\", defaults to \"http\"."),
            F.boolean("parsedFromCheck", consul="ParsedFromCheck", always=True, crd=False),
        ))),
    ))


def transparent_proxy(doc: str = _TPROXY_DOC) -> F.Field:
    return F.obj("transparentProxy", doc, fields=(
        F.integer("outboundListenerPort", "OutboundListenerPort is the port of the listener where outbound "
                  "application traffic is being redirected to."),
        F.boolean("dialedDirectly", "DialedDirectly indicates whether transparent proxies can dial this proxy "
                  "instance directly. The discovery chain is not considered when dialing a service instance directly. "
                  "This setting is useful when addressing stateful services, such as a database cluster with a leader "
                  "node."),
    ))


def mode(doc: str = _MODE_DOC) -> F.Field:
    """`mode`: in the schema, never sent to Consul, always refused by the webhook."""
    return F.string("mode", doc, consul=None)


def header_modifiers(name: str, doc: str) -> F.Field:
    return F.obj(name, doc, fields=(
        F.mapping("add", "Add is a set of name -> value pairs that should be appended to the request or response "
                  "(i.e. allowing duplicates if the same header already exists).", F.string(None)),
        F.mapping("set", "Set is a set of name -> value pairs that should be added to the request or response, "
                  "overwriting any existing header values of the same name.", F.string(None)),
        F.array("remove", "Remove is the set of header names that should be stripped from the request or response.",
                F.string(None)),
    ))


# --- rules ---------------------------------------------------------------------------------------

def not_in_slice(values: tuple[str, ...] | list[str]) -> str:
    """The reference's enum detail: `must be one of "a", "b"`."""
    return 'must be one of "' + '", "'.join(values) + '"'


def bad_path_prefix(path: Any) -> bool:
    """A path that is set but does not begin with '/'."""
    return bool(path) and not str(path).startswith("/")


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else []


def validate_mesh_gateway(block: Any, path: str) -> list[FieldError]:
    mode_ = as_dict(block).get("mode") or ""
    if mode_ not in MESH_GATEWAY_MODES:
        return [invalid(f"{path}.mode", mode_, not_in_slice(MESH_GATEWAY_MODES))]
    return []


def validate_transparent_proxy(block: Any, path: str) -> list[FieldError]:
    port = as_dict(block).get("outboundListenerPort") or 0
    if port:
        return [invalid(f"{path}.outboundListenerPort", port, "use the annotation "
                        "`consul.hashicorp.com/transparent-proxy-outbound-listener-port` to configure the Outbound "
                        "Listener Port")]
    return []


def validate_mode(spec: dict, path: str) -> list[FieldError]:
    """Any `mode` is refused; Go prints the *ProxyMode it was given with %#v (a quoted string)."""
    if "mode" in spec and spec["mode"] is not None:
        return [invalid(path, GoValue(quote(str(spec["mode"]))), "use the annotation "
                        "`consul.hashicorp.com/transparent-proxy` to configure the Transparent Proxy Mode")]
    return []


def validate_expose(block: Any, path: str) -> list[FieldError]:
    errors = []
    for i, p in enumerate(as_list(as_dict(block).get("paths"))):
        p = as_dict(p)
        if bad_path_prefix(p.get("path")):
            errors.append(invalid(f"{path}.paths[{i}].path", p.get("path"), "must begin with a '/'"))
        proto = p.get("protocol") or ""
        if proto and proto not in EXPOSE_PROTOCOLS:
            errors.append(invalid(f"{path}.paths[{i}].protocol", proto, not_in_slice(EXPOSE_PROTOCOLS)))
    return errors
