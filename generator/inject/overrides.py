"""Per-pod overrides of injected containers: what a pod author may change, and nothing more.

A pod that declares a container named like an injected sidecar (`envoy-sidecar`, `consul-sidecar`)
has that declaration laid over the rendered container, field by field (the Istio way). Pod authors
are untrusted, so the policy is an allowlist, each rule for a reason:

- `copy-consul-bin` and `consul-connect-inject-init` cannot be overridden at all: the init script
  runs as root, privileged, with NET_ADMIN; an env var (PATH, LD_PRELOAD, POD_NAME), a mount over
  the shared volume or another image there is root for the author. Administrators change them
  through values and templates.
- On the sidecars: `resources`, `imagePullPolicy`, `env` (not loader or shell variables, nor any the
  injected container sets), and `securityContext` fields that change neither the user nor the group
  and add no capability or privilege. `image` only in namespaces the values allow
  (`connectInject.podOverrides.imageNamespaces`): another image is other code running as Envoy's
  UID, whose traffic transparent proxy never redirects.
- Anything else (command, args, probes, lifecycle, volumeMounts, envFrom, ...) is a 400 naming it.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from generator.inject.annotations import show
from generator.base.errors import PodError
from generator.base.podcontract import INIT_NAMES


class OverrideRefused(PodError):
    """A declared injected container asks for what a pod may not change."""

    def __init__(self, message: str):
        super().__init__(message, "forbidden-override")


SIDECAR_FIELDS = ("image", "imagePullPolicy", "resources", "securityContext", "env")

# Variables that change what a process loads or how a shell runs, whatever the container sets.
_RESERVED_ENV = frozenset({
    "PATH", "POD_NAME", "POD_NAMESPACE", "POD_IP", "HOST_IP", "HOME", "SHELL", "ENV", "BASH_ENV",
    "IFS", "PS4", "CDPATH", "SHELLOPTS", "BASHOPTS", "GLOBIGNORE", "GCONV_PATH", "GETCONF_DIR",
    "HOSTALIASES", "LOCALDOMAIN", "LOCPATH", "NLSPATH", "RES_OPTIONS", "RESOLV_HOST_CONF", "TMPDIR",
    "TZDIR", "GODEBUG", "SSL_CERT_FILE", "SSL_CERT_DIR",
})
_RESERVED_ENV_PREFIXES = ("LD_", "MALLOC_", "GLIBC_", "CONSUL_")
_PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_SAFE_PROFILES = ("RuntimeDefault", "Localhost")
_CAPABILITY = re.compile(r"^[A-Za-z_]{1,64}$")


def check_declared(name: str, where: str) -> None:
    """A declared container named like an injected init container is refused outright."""
    if name in INIT_NAMES:
        raise OverrideRefused(
            f'{where}: a pod cannot declare the injected init container "{name}": the init containers set up '
            f"the pod's network as root, so only the administrator configures them (connectInject values and templates)"
        )


def merge(rendered: dict, user: Mapping[str, Any], where: str, *, image_allowed: bool, namespace: str) -> dict:
    """The rendered sidecar with the author's declaration laid over it; PodError for a refused field."""
    name = rendered["name"]
    out = dict(rendered)
    for key, value in user.items():
        if key == "name":
            continue
        if key not in SIDECAR_FIELDS:
            raise OverrideRefused(f'{where}.{key}: the injected container "{name}" cannot be overridden in {key}; '
                           f"a pod may override {', '.join(SIDECAR_FIELDS)}")
        if key == "image":
            out.update(_image(value, where, name, image_allowed, namespace))
        elif key == "imagePullPolicy":
            if value not in _PULL_POLICIES:
                raise OverrideRefused(f"{where}.imagePullPolicy: expected one of {', '.join(_PULL_POLICIES)}, got {show(value)}")
            out[key] = value
        elif key == "resources":
            out[key] = _merge_maps(out.get(key) or {}, value, f"{where}.resources")
        elif key == "securityContext":
            out[key] = _security_context(out.get(key) or {}, value, f"{where}.securityContext", name)
        else:
            out[key] = _env(out.get(key) or [], value, f"{where}.env", name)
    return out


def _image(value: Any, where: str, name: str, allowed: bool, namespace: str) -> dict:
    if not isinstance(value, str):
        raise OverrideRefused(f"{where}.image: expected a string, got {type(value).__name__}")
    if not value:
        return {}  # "" keeps the rendered image
    if not allowed:
        raise OverrideRefused(f'{where}.image: pods in namespace "{namespace}" may not replace the image of "{name}" '
                       f"(an administrator allows it with connectInject.podOverrides.imageNamespaces)")
    return {"image": value}


def _security_context(base: Mapping[str, Any], over: Any, where: str, name: str) -> dict:
    """Only fields that keep the user and group and add no capability or privilege; what the
    template already hardens (dropped capabilities, a seccomp or AppArmor profile, a read-only
    root filesystem) stays at least as hard."""
    if not isinstance(over, dict):
        raise OverrideRefused(f"{where}: expected a map, got {type(over).__name__}")
    out = dict(base)
    for key, value in over.items():
        here = f"{where}.{key}"
        if key in ("runAsUser", "runAsGroup"):
            if key not in base or value != base[key] or isinstance(value, bool):
                current = f"is {base[key]}" if key in base else "is not set"
                raise OverrideRefused(f'{here}: a pod cannot change the user or group of "{name}" (it {current}), got {show(value)}')
        elif key in ("privileged", "allowPrivilegeEscalation"):
            _only(value, False, here)
        elif key == "runAsNonRoot":
            _only(value, True, here)
        elif key == "readOnlyRootFilesystem":
            if not isinstance(value, bool):
                raise OverrideRefused(f"{here}: expected true or false, got {show(value)}")
            if base.get(key) is True and value is not True:
                raise OverrideRefused(f'{here}: "{name}" has a read-only root filesystem; a pod cannot make it writable')
        elif key == "capabilities":
            value = _capabilities(base.get(key) or {}, value, here)
        elif key in ("seccompProfile", "appArmorProfile"):
            if not isinstance(value, dict) or value.get("type") not in _SAFE_PROFILES or set(value) - {"type", "localhostProfile"}:
                raise OverrideRefused(f"{here}: expected a profile of type {' or '.join(_SAFE_PROFILES)}, got {show(value)}")
            if key in base and value != base[key]:
                raise OverrideRefused(f'{here}: "{name}" already has the profile {show(base[key])}; a pod cannot change it')
        elif key == "procMount":
            _only(value, "Default", here)
        else:
            raise OverrideRefused(f'{here}: a pod cannot set {key} on "{name}"; it may set runAsNonRoot: true, privileged: false, '
                           f"allowPrivilegeEscalation: false, readOnlyRootFilesystem, capabilities.drop, "
                           f"seccompProfile, appArmorProfile, procMount: Default")
        out[key] = value
    return out


def _only(value: Any, allowed: Any, where: str) -> None:
    if value is not allowed and not (isinstance(allowed, str) and value == allowed):
        raise OverrideRefused(f"{where}: a pod may only set {show(allowed)} here, got {show(value)}")


def _capabilities(base: Mapping[str, Any], value: Any, where: str) -> dict:
    """The template's capabilities with the pod's drops added (never fewer drops, never an add)."""
    if not isinstance(value, dict) or set(value) - {"add", "drop"}:
        raise OverrideRefused(f"{where}: expected a map with drop (a list of capability names), got {show(value)}")
    if value.get("add"):
        raise OverrideRefused(f"{where}.add: a pod cannot add capabilities to an injected container, got {show(value['add'])}")
    drop = value.get("drop") or []
    if not isinstance(drop, list) or not all(isinstance(c, str) and _CAPABILITY.match(c) for c in drop):
        raise OverrideRefused(f"{where}.drop: expected a list of capability names, got {show(drop)}")
    out = dict(base)
    dropped = [*(base.get("drop") or []), *(c for c in drop if c not in (base.get("drop") or []))]
    if dropped:
        out["drop"] = dropped
    return out


def _env(base: list, over: Any, where: str, name: str) -> list:
    """The author's variables after the container's own; loader and shell variables and the
    container's own names are refused."""
    if not isinstance(over, list) or not all(isinstance(item, dict) and isinstance(item.get("name"), str) for item in over):
        raise OverrideRefused(f"{where}: expected a list of maps, each with a string 'name'")
    own = {item.get("name") for item in base}
    for index, item in enumerate(over):
        var = item["name"]
        if var in own or var in _RESERVED_ENV or var.startswith(_RESERVED_ENV_PREFIXES):
            why = f'"{name}" sets it itself' if var in own else "it changes what the process loads or runs"
            raise OverrideRefused(f"{where}[{index}].name: a pod cannot set {show(var)} on \"{name}\": {why}")
    return [*base, *over]


def _merge_maps(base: dict, over: Any, where: str) -> dict:
    if not isinstance(over, dict):
        raise OverrideRefused(f"{where}: expected a map, got {type(over).__name__}")
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge_maps(out[key], value, f"{where}.{key}") if isinstance(out.get(key), dict) and isinstance(value, dict) else value
    return out
