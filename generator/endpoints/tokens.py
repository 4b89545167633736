"""Deleting a deregistered pod's ACL login token (reference §4.3).

`connect-init` logs in with the pod's service-account JWT and Consul records the login meta in
the token's Description (`token created via login: {"pod":"<ns>/<name>"}`). When the controller
deregisters the pod's service instance it deletes the tokens of the configured auth method whose
single service identity is that service and whose `pod` meta names that pod. Tokens of other pods
(not yet registered, or in another namespace) are never touched.

Deviation: a token whose Description does not parse is logged and skipped, where the reference
aborted the deregistration of every remaining instance (one odd token blocked all cleanup).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from generator.base.logs import LOGGER_NAME, log
from generator.consul.client import ConsulClient

logger = logging.getLogger(LOGGER_NAME + ".controller.endpoints")

_META = re.compile(r".*({.+})", re.DOTALL)


def login_pod(description: str) -> str | None:
    """The `pod` meta of a login token's Description, or None (logged) when it has none."""
    match = _META.match(description or "")
    if match is None:
        log(logger, logging.WARNING, "failed to parse token metadata: failed to extract token metadata "
            "from description", description=description)
        return None
    try:
        meta = json.loads(match.group(1))
    except ValueError as e:
        log(logger, logging.WARNING, "failed to parse token metadata: failed to unmarshal token metadata",
            metadata=match.group(1), error=str(e))
        return None
    pod = meta.get("pod") if isinstance(meta, dict) else None
    return pod if isinstance(pod, str) else None


async def delete_login_tokens(client: ConsulClient, auth_method: str, service_name: str, pod_name: str,
                              k8s_namespace: str, guard: Callable[[], None]) -> int:
    """Delete the login tokens of `pod_name` for `service_name`; how many were deleted."""
    if not pod_name:
        return 0
    deleted = 0
    for token in await client.acl_tokens():
        identities = token.get("ServiceIdentities") or []
        if token.get("AuthMethod") != auth_method or len(identities) != 1:
            continue
        if not isinstance(identities[0], dict) or identities[0].get("ServiceName") != service_name:
            continue
        pod = login_pod(token.get("Description", ""))
        prefix = f"{k8s_namespace}/"
        if pod is None or not pod.startswith(prefix) or pod[len(prefix):] != pod_name:
            continue
        guard()
        log(logger, logging.INFO, "deleting ACL token for pod", name=pod_name, namespace=k8s_namespace)
        await client.delete_acl_token(token.get("AccessorID", ""))
        deleted += 1
    return deleted
