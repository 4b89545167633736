"""The flags of `connect-inject acl-init` (design.md, "Living beside the Consul chart"). Kept apart
from `command` so that building the CLI's parser imports neither aiohttp nor the Kubernetes client."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's flags (values flags as the other commands, without --release-name: the
    names come from --consul-release)."""
    parser.add_argument("--values", "-v", action="append", default=[], metavar="FILE",
                        help="values file, as `helm -f` (repeatable; later files win)")
    parser.add_argument("--set", action="append", default=[], metavar="K=V", help="value, as `helm --set` (repeatable)")
    parser.add_argument("--no-chart-defaults", action="store_true",
                        help="the values files are already merged by Helm: do not lay chart/values.yaml under them")
    parser.add_argument("--consul-release", required=True, metavar="NAME",
                        help="the Consul chart's release: its fullname is global.name, else NAME-consul")
    parser.add_argument("--namespace", "-n", metavar="NS",
                        help="namespace of both releases (default: the kubeconfig's, else the pod's, else default)")
    parser.add_argument("--auth-method-service-account", required=True, metavar="NAME",
                        help="ServiceAccount whose token the auth method uses for TokenReview (the chart's own)")
