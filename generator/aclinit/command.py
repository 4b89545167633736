"""`connect-inject acl-init`: arguments, values, clients; the work is in `run`.

Process contract (design.md, "Living beside the Consul chart"): Kubernetes as for the controllers
(KUBECONFIG first, else in-cluster), Consul's servers at CONSUL_HTTP_ADDR, the management token
from CONSUL_HTTP_TOKEN / CONSUL_HTTP_TOKEN_FILE, else from the Secret the Consul chart keeps it
in. One stdout line per object; exit 0 when all are in place, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping

from kubernetes import config as kube_config

from generator.aclinit import kube as k8s
from generator.aclinit import settings as acl_settings
from generator.aclinit.run import DEFAULT_TIMEOUT, Report, Runner
from generator.base.errors import ConfigError
from generator.consul import ConsulConfig, ConsulConfigError
from generator.kube.client import controller_api_client
from generator.values import config as values

IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
PROG = "connect-inject acl-init"


def main(args: argparse.Namespace, environ: Mapping[str, str] | None = None,
         timeout: float = DEFAULT_TIMEOUT) -> int:
    env = os.environ if environ is None else environ
    try:
        merged = values.merged_values(args.values, args.set, chart_defaults=not args.no_chart_defaults)
        problems = values.schema_problems(merged)
        if problems:
            raise ConfigError(problems)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    try:
        api_client = controller_api_client()
    except kube_config.ConfigException as exc:
        print(f"{PROG}: the Kubernetes configuration is unusable: {exc}", file=sys.stderr)
        return 1
    if api_client is None:
        print(f"{PROG}: no Kubernetes configuration: set KUBECONFIG, or run in a pod", file=sys.stderr)
        return 1
    namespace = args.namespace or _default_namespace(env)
    settings = acl_settings.from_values(merged, consul_release=args.consul_release, namespace=namespace,
                                        auth_method_service_account=args.auth_method_service_account)
    try:
        consul_config = ConsulConfig.from_env(env)
    except ConsulConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    source = ""
    if env.get("CONSUL_HTTP_TOKEN_FILE"):
        source = f"CONSUL_HTTP_TOKEN_FILE ({env['CONSUL_HTTP_TOKEN_FILE']})"
    elif env.get("CONSUL_HTTP_TOKEN"):
        source = "CONSUL_HTTP_TOKEN"
    report = Report(write=lambda line: print(line, flush=True),
                    warn=lambda line: print(f"{PROG}: {line}", file=sys.stderr, flush=True))
    if not (settings.inject or settings.controller):
        print(f"{PROG}: neither connectInject.enabled nor controller.enabled is on: nothing to do", file=sys.stderr)
        return 0
    runner = Runner(settings, consul_config, k8s.Kube(api_client, namespace), report, timeout=timeout,
                    env_token_source=source)
    try:
        return asyncio.run(runner.run())
    finally:
        api_client.close()


def _default_namespace(env: Mapping[str, str]) -> str:
    """The kubeconfig context's namespace (KUBECONFIG), else the pod's, else `default`."""
    if env.get("KUBECONFIG"):
        try:
            _, active = kube_config.list_kube_config_contexts(config_file=env["KUBECONFIG"])
            namespace = (active or {}).get("context", {}).get("namespace")
            if namespace:
                return str(namespace)
        except (kube_config.ConfigException, OSError):
            pass
    try:
        with open(IN_CLUSTER_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"
