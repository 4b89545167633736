"""The `migrate` subcommand's flags, in a module that imports nothing heavy (every CLI start builds
the whole parser; the Kubernetes client is imported only when `migrate` runs)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--consul-release", required=True, metavar="NAME",
                        help="the Helm release of the Consul chart whose injector, controller and CRDs to take over")
    parser.add_argument("--namespace", "-n", metavar="NS",
                        help="its namespace (default: the kubeconfig context's, else default); ours must be the same")
    parser.add_argument("--apply", action="store_true",
                        help="perform our steps (metadata only) and check each; without it nothing is written")
