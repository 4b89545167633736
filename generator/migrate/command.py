"""`connect-inject migrate --consul-release NAME [--namespace NS] [--apply]` (design.md, "Living
beside the Consul chart"): print each step of the takeover, or with `--apply` perform ours and
check each by reading it back.

Exit codes: 0 when nothing is off (every step done, or the next one is the user's `helm` command,
printed); 1 when the cluster is not what the migration needs (the message names the object and
the fix) or a step did not read back as written; 2 when there is no cluster configuration.
Without `--apply` nothing is written. `--apply` never deletes and never runs Helm: it stops at the
first step that is the user's, so a later step's precondition (our release installed, the Consul
controller gone) always holds when it runs; run again after that step and it carries on, printing
what is already done.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO

from generator.kube.client import controller_api_client
from generator.migrate.cluster import Cluster, MigrateError
from generator.migrate.steps import (DONE, NOT_NEEDED, TODO, Change, State, Step, idle_command, plan, read_state,
                                     validate)

EXIT_OK, EXIT_FAIL, EXIT_NO_CLUSTER = 0, 1, 2
IN_CLUSTER_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def main(args: argparse.Namespace) -> int:
    from kubernetes.config import ConfigException

    try:
        api = controller_api_client()
    except ConfigException as exc:
        print(f"connect-inject migrate: the Kubernetes configuration is broken: {exc}", file=sys.stderr)
        return EXIT_NO_CLUSTER
    if api is None:
        print("connect-inject migrate: no cluster: set KUBECONFIG (or run in a pod with a ServiceAccount)", file=sys.stderr)
        return EXIT_NO_CLUSTER
    namespace = args.namespace or _context_namespace()
    try:
        return run(Cluster(api), args.consul_release, namespace, apply=args.apply, out=sys.stdout)
    except MigrateError as exc:
        print(f"connect-inject migrate: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        api.close()


def _context_namespace() -> str:
    """The namespace kubectl would use: the current kubeconfig context's, else the pod's, else default."""
    from kubernetes import config

    if os.environ.get("KUBECONFIG"):
        try:
            _, active = config.list_kube_config_contexts()
            return str((active or {}).get("context", {}).get("namespace") or "default")
        except (config.ConfigException, OSError):
            return "default"
    try:
        with open(IN_CLUSTER_NAMESPACE, encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def run(cluster: Cluster, release: str, namespace: str, *, apply: bool, out: TextIO) -> int:
    state = read_state(cluster, release, namespace)
    validate(state)
    option, steps = plan(state)
    _header(state, option, out)
    again = f"connect-inject migrate --consul-release {release} --namespace {namespace} --apply"
    if not apply:
        nxt = _next(steps)
        for i, step in enumerate(steps, 1):
            _print_step(i, len(steps), step, _label(step, step is nxt), out)
        print("", file=out)
        if nxt is None:
            print("Every step is done: the migration is complete. (Dry run: nothing was changed.)", file=out)
        else:
            print(f"Dry run: nothing was changed. Next: step {steps.index(nxt) + 1} "
                  + ("(run again with --apply to do it)." if nxt.auto else "(yours: the command above)."), file=out)
        return EXIT_OK

    i = 0
    while i < len(steps):
        step = steps[i]
        number = i + 1
        if step.status == DONE:
            _print_step(number, len(steps), step, "already done", out, brief=True)
        elif step.status == NOT_NEEDED:
            _print_step(number, len(steps), step, "not needed", out, brief=True)
        elif step.auto:
            assert step.patches is not None
            changes = step.patches()
            for change in changes:
                _perform(cluster, change)
            state = read_state(cluster, release, namespace)
            validate(state)
            _, steps = plan(state)
            if steps[i].status != DONE:
                raise MigrateError(f"step {number} ({step.title}) did not take: {steps[i].note}. Fix: run migrate again; "
                                   "if it fails the same way, something else rewrites these objects")
            step = steps[i]
            _print_step(number, len(steps), step, f"done now, checked: {_checked(changes)}", out, brief=True)
        elif step.optional:
            _print_step(number, len(steps), step, "optional, not done", out)
        else:
            _print_step(number, len(steps), step, "next: yours to run", out)
            for later in range(i + 1, len(steps)):
                print(f"Step {later + 1}/{len(steps)}  {steps[later].title}  [waiting for step {number}]", file=out)
            print("", file=out)
            print(f"Stopped at step {number}: run its command, check it as shown, then run `{again}` again.", file=out)
            return EXIT_OK
        i += 1
    print("", file=out)
    print("Every step is done: the migration is complete.", file=out)
    return EXIT_OK


def _perform(cluster: Cluster, change: Change) -> None:
    """Patch one object's metadata (on the resourceVersion just read) and read it back."""
    where = f"{change.kind} {change.namespace + '/' if change.namespace else ''}{change.name}"
    current = cluster.read(change.kind, change.name, change.namespace)
    if current is None:
        raise MigrateError(f"{where} disappeared while migrating. Fix: check who deletes it (a Helm upgrade of the "
                           "Consul release?), then run migrate again")
    meta: dict[str, object] = {"resourceVersion": current["metadata"]["resourceVersion"],
                               "annotations": dict(change.annotations)}
    if change.labels:
        meta["labels"] = dict(change.labels)
    cluster.patch_metadata(change.kind, change.name, change.namespace, meta)
    back = cluster.read(change.kind, change.name, change.namespace) or {}
    notes = (back.get("metadata") or {}).get("annotations") or {}
    labels = (back.get("metadata") or {}).get("labels") or {}
    for key, want in [*change.annotations.items(), *change.labels.items()]:
        got = notes.get(key) if key in change.annotations else labels.get(key)
        if got != want:
            raise MigrateError(f"{where} reads back {key}={got!r} after we set {want!r}: something else rewrites it "
                               "(an admission policy, a GitOps controller, a Helm upgrade running now). Fix: stop "
                               "that, then run migrate again")


def _checked(changes: list[Change]) -> str:
    keys = sorted({k for c in changes for k in [*c.annotations, *c.labels]})
    return f"{len(changes)} object(s) read back with {', '.join(keys)}"


def _next(steps: list[Step]) -> Step | None:
    return next((s for s in steps if s.status == TODO and not s.optional), None)


def _label(step: Step, is_next: bool) -> str:
    if step.status != TODO:
        return step.status
    who = "migrate --apply does it" if step.auto else "yours to run"
    return ("optional, " if step.optional else "next, " if is_next else "to do, ") + who


def _print_step(number: int, total: int, step: Step, status: str, out: TextIO, *, brief: bool = False) -> None:
    print(f"Step {number}/{total}  {step.title}  [{status}]", file=out)
    if step.note:
        print(f"    now:      {step.note}", file=out)
    if brief:
        return
    print(f"    changes:  {step.changes}", file=out)
    print(f"    check:    {step.check}", file=out)
    if step.status == TODO:
        for command in step.commands:
            print(f"    {'by hand:' if step.auto else 'run:    '}  {command}", file=out)


def _header(state: State, option: str, out: TextIO) -> None:
    c = state.fullname
    injector = ("idle (empty allow list)" if state.injector_idle else "active" if state.consul_injector_active else "off")
    controller = "active" if state.consul_controller_active else "off"
    owned = len(state.crds_owned_by(state.release))
    print(f'Consul release "{state.release}" in namespace "{state.namespace}" (its objects are named {c}-*)', file=out)
    print(f"  injector:      {injector} (webhook configuration {c}-connect-injector-cfg)", file=out)
    print(f"  controller:    {controller} (Deployment {c}-controller)", file=out)
    print(f"  CRDs:          {len(state.crds)} of 10 consul.hashicorp.com CRDs, {owned} owned by the Consul release, "
          f"{len(state.crds_owned_by(state.ours))} by ours; {state.custom_resources} custom resource(s)", file=out)
    print(f"  ACLs:          {'yes' if state.acls else 'no'}"
          + (f" (auth-method ServiceAccount {c}-connect-injector-authmethod-svc-account)" if state.auth_objects else ""),
          file=out)
    print(f"  injected pods: {state.injected_pods} ({state.managed_pods} managed by an endpoints controller): they "
          "need nothing, they keep their sidecars and tokens", file=out)
    print(f"  gateways:      {', '.join(state.gateways) or 'none'}", file=out)
    print(f"  our release:   {state.ours or 'not installed'}", file=out)
    if option == "A":
        print("Option A: hand everything over to our release (the Consul release has no gateways). To keep its "
              "injector instead, idled by an empty allow list (option B: no client-agent restart), idle it first, "
              "then run migrate again (it then walks option B):", file=out)
        print(f"    {idle_command(state)}", file=out)
    else:
        why = f"the Consul release has gateways ({', '.join(state.gateways)}), which need its injector on" \
            if state.gateways else "the Consul injector is idled"
        print(f"Option B: keep the Consul release's injector, idled; take over its controller and CRDs ({why}).",
              file=out)
    print("", file=out)
