"""The `connect-inject` command: review, inject, check-values, serve (and explain).

Every subcommand loads values through `engine.load()` and answers pods through `review()`; this
module only reads arguments and files and prints results.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Sequence

from generator.inject import engine
from generator.kube import namespaces
from generator.base.errors import ConfigError, ReviewError

if TYPE_CHECKING:
    from generator.inject.review import NamespaceLabels
    from generator.values.config import Config
    from generator.values.controllers import ControllerSettings

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def _values_args(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument("--values", "-v", action="append", default=[], metavar="FILE", required=required,
                        help="values file, as `helm -f` (repeatable; later files win)")
    parser.add_argument("--set", action="append", default=[], metavar="K=V", help="value, as `helm --set` (repeatable)")
    parser.add_argument("--release-name", default="consul", help="Helm release name used for the chart's fullname (default consul)")
    parser.add_argument("--no-chart-defaults", action="store_true",
                        help="the values files are already merged by Helm (the chart's ConfigMap): do not lay chart/values.yaml under them")


def build_parser(serve_flags: bool = True) -> argparse.ArgumentParser:
    """The argument parser; `serve_flags=False` skips importing the server (aiohttp) for speed."""
    parser = argparse.ArgumentParser(prog="connect-inject", description="Consul Connect sidecar injector for Kubernetes")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("review", help="answer one AdmissionReview (JSON) as the webhook would")
    p.add_argument("-f", "--filename", default="-", help="AdmissionReview JSON file, or - for stdin (default)")
    _values_args(p)
    p.add_argument("--namespaces", metavar="FILE", help="YAML stream of Namespace objects whose labels stand in for the cluster's")

    p = sub.add_parser("inject", help="inject pods and workloads from a YAML stream")
    p.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    _values_args(p)
    p.add_argument("--namespace", "-n", help="namespace of objects that name none (default: their own, else default)")
    p.add_argument("--namespaces", metavar="FILE", help="YAML stream of Namespace objects whose labels stand in for the cluster's")

    p = sub.add_parser("explain", help="say why each pod would or would not be injected, step by step")
    p.add_argument("-f", "--filename", default="-", help="YAML file of pods or workloads, or - for stdin (default)")
    _values_args(p)
    p.add_argument("--namespace", "-n", help="namespace of objects that name none (default: their own, else default)")
    p.add_argument("--namespaces", metavar="FILE", help="YAML stream of Namespace objects whose labels stand in for the cluster's")
    p.add_argument("--output", "-o", choices=("text", "json"), default="text", help="text (default) or json")

    p = sub.add_parser("check-values", help="validate values files against the chart's schema and rules")
    _values_args(p, required=True)

    p = sub.add_parser("serve", help="run the admission webhook over HTTPS")
    _values_args(p)
    if serve_flags:
        from generator.webhook import server

        server.add_arguments(p)

    p = sub.add_parser("endpoints-controller",
                       help="register injected pods and their proxies with the Consul client agents")
    _values_args(p)
    if serve_flags:
        from generator.controllers import runtime

        runtime.add_arguments(p)

    p = sub.add_parser("controller", help="sync the consul.hashicorp.com config-entry resources to Consul, "
                                          "and serve their webhooks")
    _values_args(p)
    if serve_flags:
        from generator.entrycontroller import controller as entry_controller

        entry_controller.add_arguments(p)

    p = sub.add_parser("acl-init", help="create or update the Consul ACL objects of the injector and controller "
                                        "(auth method, binding rule, policies, token Secrets) beside the Consul chart")
    from generator.aclinit import arguments as acl_init_arguments

    acl_init_arguments.add_arguments(p)

    p = sub.add_parser("migrate", help="take over a Consul chart release's injector, controller and CRDs, "
                                       "step by step (prints the steps; --apply performs ours)")
    from generator.migrate import arguments as migrate_arguments

    migrate_arguments.add_arguments(p)

    p = sub.add_parser("check-config-entries",
                       help="check config-entry resources offline as their webhooks would (defaulting, validation)")
    p.add_argument("-f", "--filename", default="-", help="YAML file, or - for stdin (default)")
    _values_args(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    long_running = argv[:1] in (["serve"], ["endpoints-controller"], ["controller"])
    args = build_parser(serve_flags=long_running or "-h" in argv or "--help" in argv).parse_args(argv)
    # check-values judges the values as the chart does; the webhook's environment only warns there.
    env_warnings: list[str] | None = [] if args.command == "check-values" else None
    if args.command == "acl-init":
        from generator.aclinit import command as acl_init_command

        return acl_init_command.main(args)
    if args.command == "migrate":
        from generator.migrate import command as migrate_command

        return migrate_command.main(args)
    if args.command in ("endpoints-controller", "controller", "check-config-entries"):
        return _values_only(args)
    try:
        config = engine.load(args.values, args.set, release_name=args.release_name, chart_defaults=not args.no_chart_defaults,
                                 check_only=env_warnings)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_FAIL
    if args.command == "check-values":
        for warning in env_warnings or ():
            print(f"warning: {warning}", file=sys.stderr)
        print(f"values OK: {', '.join(args.values)}")
        return EXIT_OK
    if args.command == "serve":
        from generator.webhook import server

        return server.main(args, config)
    try:
        labels = namespaces.lookup(namespaces.load_labels(args.namespaces))
    except ConfigError as exc:
        print("\n".join(exc.problems), file=sys.stderr)
        return EXIT_FAIL
    if args.command == "review":
        return _review(args, config, labels)
    if args.command == "explain":
        return _explain(args, config, labels)
    return _inject(args, config, labels)


def _values_only(args: argparse.Namespace) -> int:
    """The commands that render no templates: values only, then the command."""
    from generator.values import config as values

    try:
        settings = values.load_settings(args.values, args.set, release_name=args.release_name,
                                        chart_defaults=not args.no_chart_defaults)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EXIT_FAIL
    if args.command == "endpoints-controller":
        from generator.endpoints import controller

        return controller.main(args, settings.endpoints)
    if args.command == "controller":
        from generator.entrycontroller import controller as entry_controller

        return entry_controller.main(args, settings.controller)
    return _check_config_entries(args, settings.controller)


def _check_config_entries(args: argparse.Namespace, settings: ControllerSettings) -> int:
    from generator.entrycontroller import offline

    docs = _read_docs(args)
    if docs is None:
        return EXIT_FAIL
    problems, checked = offline.check(docs, settings)
    for line in problems:
        print(line)
    print(f"{checked} config-entry resource(s) checked, {len(problems)} problem(s)", file=sys.stderr)
    return EXIT_FAIL if problems else EXIT_OK


def _read_docs(args: argparse.Namespace) -> list | None:
    """The YAML stream named by -f, or None after printing why it cannot be read."""
    import yaml

    from generator.base.yamlio import read_stream

    try:
        return read_stream(args.filename)
    except OSError as exc:
        print(f"connect-inject {args.command}: cannot read {args.filename}: {exc.strerror or exc}", file=sys.stderr)
    except yaml.YAMLError as exc:
        print(f"connect-inject {args.command}: {args.filename} is not valid YAML: {' '.join(str(exc).split())}", file=sys.stderr)
    return None


def _explain(args: argparse.Namespace, config: Config, labels: NamespaceLabels) -> int:
    from generator.inject import explain

    docs = _read_docs(args)
    if docs is None:
        return EXIT_FAIL
    reports = explain.explain_stream(docs, config, args.namespace, labels)
    sys.stdout.write(explain.as_json(reports) if args.output == "json" else explain.as_text(reports))
    for report in reports:
        for warning in report.warnings:
            print(f"{report.object}: warning: {warning}", file=sys.stderr)
    return explain.exit_code(reports)


def _review(args: argparse.Namespace, config: Config, labels: NamespaceLabels) -> int:
    from generator.inject.review import parse_review, review

    try:
        raw = sys.stdin.buffer.read() if args.filename == "-" else open(args.filename, "rb").read()
        result = review(parse_review(raw), config, labels)
    except OSError as exc:
        print(f"connect-inject review: cannot read {args.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ReviewError as exc:
        print(f"connect-inject review: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    json.dump(result.review, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return EXIT_OK


def _inject(args: argparse.Namespace, config: Config, labels: NamespaceLabels) -> int:
    from generator.inject.workloads import inject_stream
    from generator.base.yamlio import dump_stream

    docs = _read_docs(args)
    if docs is None:
        return EXIT_FAIL
    outcome = inject_stream(docs, config, args.namespace, labels)
    sys.stdout.write(dump_stream(outcome.objects))
    for line in outcome.warnings + outcome.errors:
        print(line, file=sys.stderr)
    return EXIT_FAIL if outcome.errors else EXIT_OK
