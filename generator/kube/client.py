"""The official Kubernetes client, configured the way every component here uses it.

One place decides where the configuration comes from (in-cluster service account, else
KUBECONFIG / ~/.kube/config, else no cluster) and turns off urllib3's silent retries: each
caller (the watch caches, a GET on a cache miss, later the controllers' writes) has its own
timeout and backoff, and three hidden retries would outlast the API server's 10 s budget.
"""

from __future__ import annotations

import os

from kubernetes import client, config


def configuration_from_environment() -> client.Configuration | None:
    """The in-cluster service account, else KUBECONFIG / ~/.kube/config, else None (no cluster).

    Raises `kubernetes.config.ConfigException` when a configuration exists but is broken.
    """
    cfg = client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    elif os.environ.get("KUBECONFIG") or os.path.exists(os.path.expanduser(config.KUBE_CONFIG_DEFAULT_LOCATION)):
        config.load_kube_config(client_configuration=cfg)
    else:
        return None
    return cfg


def api_client_for(cfg: client.Configuration) -> client.ApiClient:
    """An ApiClient for `cfg` without urllib3's retries (any API group's class can wrap it)."""
    cfg.retries = False
    return client.ApiClient(cfg)


def api_for(cfg: client.Configuration) -> client.CoreV1Api:
    """The core/v1 API (Namespaces, Pods, Endpoints, Services) for `cfg`, without retries."""
    return client.CoreV1Api(api_client_for(cfg))


def api_from_environment() -> client.CoreV1Api | None:
    """The core/v1 API of the cluster we run in or point at, or None when there is none.

    Raises `kubernetes.config.ConfigException` when a configuration exists but is broken.
    """
    cfg = configuration_from_environment()
    return None if cfg is None else api_for(cfg)


def controller_api_client() -> client.ApiClient | None:
    """For the controllers: KUBECONFIG first, else the in-cluster service account (design.md
    "Controllers": a kubeconfig naming a plain http:// server without credentials works); None
    when neither is there. Raises `kubernetes.config.ConfigException` for a broken one."""
    cfg = client.Configuration()
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config(client_configuration=cfg)
    elif os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config(client_configuration=cfg)
    else:
        return None
    return api_client_for(cfg)
