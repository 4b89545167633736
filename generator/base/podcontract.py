"""The names and numbers the injected pod's contract fixes, in one place.

consul-k8s v0.37's images and controllers rely on them (the endpoints controller finds the pod's
proxy by these container names; connect-init writes into this volume; transparent proxy exempts
Envoy's UID), so they are constants, not settings. The templates receive them as `const`.
"""

from __future__ import annotations

from typing import Any, Mapping

ENVOY_UID = 5995  # envoy-sidecar's user: its traffic is never redirected
COPY_UID = 5996  # copy-consul-bin's user
VOLUME_NAME = "consul-connect-inject-data"
MOUNT_PATH = "/consul/connect-inject"
SA_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

INIT_NAMES = ("copy-consul-bin", "consul-connect-inject-init")
SIDECAR_NAMES = ("envoy-sidecar", "consul-sidecar")
INJECTED_NAMES = (*INIT_NAMES, *SIDECAR_NAMES)

ADMISSION_API_VERSIONS = ("admission.k8s.io/v1", "admission.k8s.io/v1beta1")

# What templates see as `const` (README "Templates").
TEMPLATE_CONSTANTS: Mapping[str, Any] = {
    "envoy_uid": ENVOY_UID,
    "copy_uid": COPY_UID,
    "volume_name": VOLUME_NAME,
    "mount_path": MOUNT_PATH,
}
