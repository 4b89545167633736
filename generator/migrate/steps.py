"""The takeover, step by step, decided from one reading of the cluster.

`read_state()` gathers what the reference study's migration (install-beside-consul.md §3) looks at:
the Consul release's injector webhook and Deployment, its controller Deployment and webhook, the ten
consul.hashicorp.com CRDs and their Helm ownership, the auth-method ServiceAccount and its RBAC,
injected pods, gateways, and our own release (found by our chart's label). `plan()` turns that into
the steps of option A (hand everything over) or option B (keep the Consul injector, idled by an
empty allow list: mandatory with gateways, chosen by idling it). Each step knows whether it is done,
what it changes, how to check it, and who does it: `migrate --apply` performs only metadata patches
(the two `keep` steps and the CRD ownership move); the `helm` steps are the user's, printed as
commands. `validate()` stops before anything when the cluster is not what the migration assumes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from generator.migrate.cluster import (CRD_NAMES, KEEP, MANAGED_BY, RELEASE_NAME, RELEASE_NAMESPACE,
                                       Cluster, MigrateError, Obj, annotation, label, name_of, owner)

OUR_CHART = "consul-connect-inject"  # chart/Chart.yaml name; our objects carry helm.sh/chart=<it>-<version>
SIDE_BY_SIDE = "global.consulReleaseSideBySide"
IDLE_LABEL = "consul.hashicorp.com/idle-consul-chart-injector"
GATEWAY_COMPONENTS = ("mesh-gateway", "ingress-gateway", "terminating-gateway")
# Name suffixes of objects the Consul chart (v0.37) always or often creates, to find its fullname C.
_SUFFIXES = {
    "MutatingWebhookConfiguration": ("-connect-injector-cfg", "-controller-mutating-webhook-configuration"),
    "Deployment": ("-connect-injector-webhook-deployment", "-controller"),
    "ServiceAccount": ("-connect-injector-authmethod-svc-account", "-client", "-server"),
}


@dataclass
class State:
    """One reading of the cluster, as the steps need it."""

    release: str                      # CR
    namespace: str                    # CN
    fullname: str                     # C
    crds: dict[str, Obj] = field(default_factory=dict)          # existing ones of the ten, by name
    custom_resources: int = 0
    injector_webhook: Obj | None = None       # C-connect-injector-cfg owned by CR
    injector_deployment: Obj | None = None
    controller_webhook: Obj | None = None
    controller_deployment: Obj | None = None
    injector_idle: bool = False
    gateways: list[str] = field(default_factory=list)
    acls: bool = False
    auth_objects: list[tuple[str, str, str | None, Obj]] = field(default_factory=list)  # kind, name, ns, obj
    injected_pods: int = 0
    managed_pods: int = 0
    ours: str | None = None                   # our release's name
    our_injector_ready: bool = False
    our_controller_ready: bool = False
    our_acl_job_done: datetime | None = None
    consul_revision: datetime | None = None   # when the Consul release's latest revision was deployed

    @property
    def consul_injector_active(self) -> bool:
        return self.injector_webhook is not None or self.injector_deployment is not None

    @property
    def consul_controller_active(self) -> bool:
        return self.controller_webhook is not None or self.controller_deployment is not None

    def crds_owned_by(self, release: str | None) -> list[str]:
        return [n for n, crd in self.crds.items() if release and owner(crd) == (release, self.namespace)]


def _owned(obj: Obj, release: str, namespace: str) -> bool:
    return owner(obj) == (release, namespace)


def _ours(obj: Obj) -> bool:
    return label(obj, "helm.sh/chart").startswith(OUR_CHART + "-")


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _fullname(release: str, namespace: str, webhooks: list[Obj], deployments: list[Obj], accounts: list[Obj],
              crds: dict[str, Obj]) -> str:
    """C: from the names of the objects the Consul release owns in CN; else stop with where it is."""
    for kind, objs in (("MutatingWebhookConfiguration", webhooks), ("Deployment", deployments),
                       ("ServiceAccount", accounts)):
        for suffix in _SUFFIXES[kind]:
            for obj in objs:
                name = name_of(obj)
                if _owned(obj, release, namespace) and not _ours(obj) and name.endswith(suffix) and len(name) > len(suffix):
                    return name[: -len(suffix)]
    elsewhere = sorted({owner(o)[1] for o in [*webhooks, *crds.values()] if owner(o)[0] == release and owner(o)[1]}
                       - {namespace})
    if elsewhere:
        raise MigrateError(
            f'the Consul release "{release}" is not in namespace "{namespace}": its objects say namespace '
            f'"{elsewhere[0]}" (annotation {RELEASE_NAMESPACE}). Fix: run migrate with --namespace {elsewhere[0]} '
            "(our chart must be installed in the Consul release's namespace).")
    raise MigrateError(
        f'no object of a Helm release "{release}" in namespace "{namespace}": looked for its webhook configuration '
        "<fullname>-connect-injector-cfg, its Deployments and its ServiceAccounts <fullname>-client/-server "
        f"(annotation {RELEASE_NAME}={release}). Fix: pass the Consul release's name (`helm list -A`) as "
        "--consul-release and its namespace as --namespace.")


def read_state(cluster: Cluster, release: str, namespace: str) -> State:
    """Read everything the steps look at (reads only)."""
    webhooks = cluster.mutating_webhooks()
    deployments = cluster.deployments(namespace)
    accounts = cluster.service_accounts(namespace)
    crds = {name: crd for name in CRD_NAMES if (crd := cluster.crd(name)) is not None}
    c = _fullname(release, namespace, webhooks, deployments, accounts, crds)
    state = State(release, namespace, c, crds=crds)
    state.custom_resources = sum(cluster.custom_resource_count(crd) for crd in crds.values())

    def consul_owned(objs: list[Obj], name: str) -> Obj | None:
        return next((o for o in objs if name_of(o) == name and not _ours(o)
                     and owner(o)[0] in (release, "")), None)

    state.injector_webhook = consul_owned(webhooks, f"{c}-connect-injector-cfg")
    state.injector_deployment = consul_owned(deployments, f"{c}-connect-injector-webhook-deployment")
    state.controller_webhook = consul_owned(webhooks, f"{c}-controller-mutating-webhook-configuration")
    state.controller_deployment = consul_owned(deployments, f"{c}-controller")
    state.injector_idle = _idle(cluster, state.injector_webhook, state.injector_deployment)
    state.gateways = sorted(name_of(d) for d in deployments if label(d, "release") == release
                            and label(d, "component") in GATEWAY_COMPONENTS and not _ours(d))

    sa_name = f"{c}-connect-injector-authmethod-svc-account"
    sa = next((a for a in accounts if name_of(a) == sa_name), None)
    if sa is not None:
        state.auth_objects.append(("ServiceAccount", sa_name, namespace, sa))
        for kind, name, read in (
                ("ClusterRole", f"{c}-connect-injector-authmethod-role", cluster.cluster_role),
                ("ClusterRoleBinding", f"{c}-connect-injector-authmethod-authdelegator-role-binding",
                 cluster.cluster_role_binding),
                ("ClusterRoleBinding", f"{c}-connect-injector-authmethod-serviceaccount-role-binding",
                 cluster.cluster_role_binding)):
            if (obj := read(name)) is not None:
                state.auth_objects.append((kind, name, None, obj))
    state.acls = sa is not None or cluster.secret_exists(namespace, f"{c}-connect-inject-acl-token")

    pods = cluster.pods_injected()
    state.injected_pods = len(pods)
    state.managed_pods = sum(1 for p in pods if label(p, "consul.hashicorp.com/connect-inject-managed-by")
                             == "consul-k8s-endpoints-controller")

    ours = [o for o in [*webhooks, *deployments] if _ours(o) and owner(o)[0]]
    here = [o for o in ours if owner(o)[1] == namespace]
    if ours and not here:
        theirs = owner(ours[0])
        raise MigrateError(
            f'our release "{theirs[0]}" is installed in namespace "{theirs[1]}", the Consul release "{release}" in '
            f'"{namespace}": the injector reads the Consul release\'s Secrets and agents, which only works in the '
            f"same namespace. Fix: `helm uninstall {theirs[0]} -n {theirs[1]}` and install it in {namespace}.")
    if here:
        state.ours = owner(here[0])[0]
        for d in deployments:
            if _ours(d) and owner(d)[0] == state.ours:
                ready = int((d.get("status") or {}).get("readyReplicas") or 0) > 0
                if label(d, "component") == "connect-injector":
                    state.our_injector_ready = ready
                elif label(d, "component") == "controller":
                    state.our_controller_ready = ready
        # The acl-init hook runs after every install/upgrade of ours; Helm marks a revision deployed only
        # when its post-upgrade hooks succeeded (the chart deletes the succeeded Job: the revision is the
        # lasting evidence; a kept Job's completionTime counts too).
        runs = [t for t in (_acl_job_done(cluster.jobs(namespace), state.ours),
                            _latest_revision(cluster, namespace, state.ours)) if t is not None]
        state.our_acl_job_done = max(runs) if runs else None
    state.consul_revision = _latest_revision(cluster, namespace, release)
    return state


def _latest_revision(cluster: Cluster, namespace: str, release: str) -> datetime | None:
    """When the release's deployed revision was made: Helm's `createdAt` label (Unix seconds, set by
    its Secret storage), else the Secret's creationTimestamp."""
    times: list[datetime] = []
    for rev in cluster.helm_revisions(namespace, release):
        created = label(rev, "createdAt")
        if created.isdigit():
            times.append(datetime.fromtimestamp(int(created), timezone.utc))
        elif (t := _time(rev["metadata"].get("creationTimestamp"))) is not None:
            times.append(t)
    return max(times) if times else None


def _idle(cluster: Cluster, webhook: Obj | None, deployment: Obj | None) -> bool:
    """The Consul injector neutralised as option B does it (§3.2): its webhook's namespaceSelector
    matches no namespace, and its Deployment has no -allow-k8s-namespace flag (empty allow list)."""
    if webhook is None and deployment is None:
        return False
    if webhook is not None:
        for hook in webhook.get("webhooks") or []:
            selector = (hook.get("namespaceSelector") or {}).get("matchLabels") or {}
            if not selector:
                return False
            if cluster.namespaces_matching(",".join(f"{k}={v}" for k, v in sorted(selector.items()))):
                return False
    if deployment is not None:
        for container in ((deployment.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []:
            words = " ".join([*(container.get("command") or []), *(container.get("args") or [])])
            if "-allow-k8s-namespace" in words:
                return False
    return True


def _acl_job_done(jobs: list[Obj], ours: str) -> datetime | None:
    """When our release's acl-init Job last succeeded (the Job that runs `connect-inject acl-init`)."""
    done: list[datetime] = []
    for job in jobs:
        if ours not in (label(job, "app.kubernetes.io/instance"), label(job, "release")):
            continue
        spec = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        words = " ".join(w for c in spec.get("containers") or [] for w in [*(c.get("command") or []), *(c.get("args") or [])])
        status = job.get("status") or {}
        if "acl-init" in words and int(status.get("succeeded") or 0) > 0 and (t := _time(status.get("completionTime"))):
            done.append(t)
    return max(done) if done else None


def validate(state: State) -> None:
    """Stop before any step when a CRD belongs to a release that is neither the Consul one nor ours."""
    for name, crd in sorted(state.crds.items()):
        rel, ns = owner(crd)
        if (rel, ns) == (state.release, state.namespace) or (state.ours and (rel, ns) == (state.ours, state.namespace)):
            if (crd.get("metadata") or {}).get("deletionTimestamp"):
                raise MigrateError(
                    f"CustomResourceDefinition {name} is being deleted (deletionTimestamp set): its custom resources "
                    "go with it. Fix: nothing can stop it now; once it is gone, reinstall the CRD from the chart "
                    "and re-apply the resources from their source (git), then run migrate again.")
            continue
        who = f'Helm release "{rel}" in namespace "{ns or "?"}"' if rel else "no Helm release (no meta.helm.sh annotations)"
        fix_owner = state.ours or state.release
        raise MigrateError(
            f"CustomResourceDefinition {name} is owned by {who}, neither the Consul release "
            f'"{state.release}" in "{state.namespace}"' + (f' nor ours ("{state.ours}")' if state.ours else "") +
            ". Fix: if " + (f'"{rel}" is the Consul release, run migrate with --consul-release {rel} --namespace {ns}; '
                           "otherwise, " if rel else "") +
            f"when you are sure nothing else manages it, hand it over: kubectl annotate crd {name} "
            f"{RELEASE_NAME}={fix_owner} {RELEASE_NAMESPACE}={state.namespace} --overwrite && kubectl label crd {name} "
            f"{MANAGED_BY}=Helm --overwrite")


# -- the steps ------------------------------------------------------------------------------------

DONE, TODO, NOT_NEEDED = "done", "to do", "not needed"


@dataclass
class Change:
    """One metadata patch an automatic step makes, and the values it must read back."""

    kind: str
    name: str
    namespace: str | None
    annotations: dict[str, str]
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Step:
    title: str
    changes: str
    check: str
    status: str
    note: str = ""                       # why it is done / not needed / what is left
    auto: bool = False                   # migrate --apply performs it
    optional: bool = False
    commands: list[str] = field(default_factory=list)   # what the user runs (or the kubectl equivalent)
    patches: Callable[[], list[Change]] | None = None


def _names(state: State, names: list[str]) -> str:
    return " ".join(names) if names else "(none)"


def _keep_crds(state: State) -> Step:
    theirs = state.crds_owned_by(state.release)
    missing = [n for n in theirs if annotation(state.crds[n], KEEP) != "keep"]
    status = NOT_NEEDED if not state.crds else (TODO if missing else DONE)
    note = ("no consul.hashicorp.com CRD exists" if not state.crds else
            f"{len(missing)} of {len(theirs)} CRDs owned by {state.release} lack it" if missing else
            f"every CRD owned by {state.release} carries it" if theirs else "the CRDs are no longer the Consul release's")
    return Step(
        "Mark the Consul release's CRDs helm.sh/resource-policy=keep",
        f"adds annotation {KEEP}=keep to the consul.hashicorp.com CRDs the Consul release owns: when it stops "
        f"rendering them (controller.enabled=false) Helm skips their deletion, so the CRDs and their "
        f"{state.custom_resources} custom resource(s) stay, and with them the config entries in Consul",
        "kubectl get crd " + _names(state, list(state.crds)) +
        " -o custom-columns=NAME:.metadata.name,POLICY:.metadata.annotations.helm\\.sh/resource-policy",
        status, note, auto=True,
        commands=[f"kubectl annotate crd {_names(state, missing or theirs)} {KEEP}=keep"],
        patches=lambda: [Change("CustomResourceDefinition", n, None, {KEEP: "keep"}) for n in missing])


def _keep_auth_method(state: State) -> Step:
    missing = [(k, n, ns) for k, n, ns, obj in state.auth_objects
               if owner(obj)[0] == state.release and annotation(obj, KEEP) != "keep"]
    status = NOT_NEEDED if not state.auth_objects else (TODO if missing else DONE)
    return Step(
        "Keep the Consul release's auth-method ServiceAccount and its RBAC alive",
        f"adds {KEEP}=keep to ServiceAccount {state.fullname}-connect-injector-authmethod-svc-account, ClusterRole "
        f"{state.fullname}-connect-injector-authmethod-role and its two ClusterRoleBindings: when the Consul release "
        f"turns connectInject off they stay, so the JWT the auth method {state.fullname}-k8s-auth-method holds keeps "
        "working and new pods keep logging in until our ACL job has re-pointed it",
        f"kubectl -n {state.namespace} get sa {state.fullname}-connect-injector-authmethod-svc-account "
        "-o jsonpath='{.metadata.annotations.helm\\.sh/resource-policy}'",
        status, "no ACLs (no auth-method ServiceAccount)" if not state.auth_objects else "", auto=True,
        commands=[f"kubectl annotate {k.lower()} {'-n ' + ns + ' ' if ns else ''}{n} {KEEP}=keep" for k, n, ns in missing],
        patches=lambda: [Change(k, n, ns, {KEEP: "keep"}) for k, n, ns in missing])


def _install_ours(state: State, option: str) -> Step:
    done = state.ours is not None and state.our_injector_ready
    note = (f'release "{state.ours}", injector ready' if done else
            f'release "{state.ours}" found, its injector has no ready replica yet' if state.ours else "not installed")
    return Step(
        "Install our chart beside the Consul release (injector on, our controller off)",
        "our injector and endpoints controller start in the Consul release's namespace"
        + (", our ACL job writes the auth method, binding rule and inject token" if state.acls and option == "A" else "")
        + "; while both injectors run, the webhook configuration whose name sorts first injects and the other "
        "skips the pod (connect-inject-status is already set): no pod is injected twice",
        f"kubectl -n {state.namespace} rollout status deployment -l app.kubernetes.io/component=connect-injector,"
        f"app.kubernetes.io/instance={state.ours or '<ours>'}",
        DONE if done else TODO, note,
        commands=[f"helm install {state.ours or '<ours>'} <our chart> -n {state.namespace} -f <your values.yaml> "
                  f"--set global.consulRelease={state.release} --set {SIDE_BY_SIDE}=true "
                  "--set controller.enabled=false"])


def idle_command(state: State) -> str:
    """Option B's neutralisation of the Consul injector (install-beside-consul.md §3.2)."""
    return (f"helm upgrade {state.release} hashicorp/consul -n {state.namespace} --reuse-values "
            "--set 'connectInject.k8sAllowNamespaces={}' "
            f"--set-string 'connectInject.namespaceSelector=matchLabels: {{\"{IDLE_LABEL}\": \"true\"}}'")


def _idle_injector(state: State) -> Step:
    done = state.injector_idle or not state.consul_injector_active
    return Step(
        "Idle the Consul release's injector (empty allow list, a namespaceSelector no namespace matches)",
        "the API server stops calling the Consul injector and its endpoints controller ignores every namespace; "
        "its Deployment keeps running, the client agents do not restart (their ConfigMap is unchanged)",
        f"kubectl get mutatingwebhookconfiguration {state.fullname}-connect-injector-cfg "
        "-o jsonpath='{.webhooks[*].namespaceSelector}'",
        DONE if done else TODO,
        "idle" if state.injector_idle else "the Consul injector is gone" if done else "the Consul injector is active",
        commands=[idle_command(state)])


def _consul_off(state: State) -> Step:
    active = [n for n, o in (("injector webhook", state.injector_webhook), ("injector", state.injector_deployment),
                              ("controller", state.controller_deployment),
                              ("controller webhook", state.controller_webhook)) if o is not None]
    return Step(
        "Turn the Consul release's injector and controller off",
        "the Consul release deletes its injector, endpoints controller, controller, their webhook configurations, "
        "the webhook cert manager" + (" and (unless kept, step 2) the auth-method ServiceAccount and RBAC" if state.acls else "")
        + "; the CRDs stay (keep); every client agent restarts once (its ConfigMap changes): plan it with "
        "client.updateStrategy",
        f"kubectl get mutatingwebhookconfiguration {state.fullname}-connect-injector-cfg "
        f"{state.fullname}-controller-mutating-webhook-configuration (both NotFound); kubectl get crd (still there)",
        TODO if active else DONE, "still active: " + ", ".join(active) if active else "",
        commands=[f"helm upgrade {state.release} hashicorp/consul -n {state.namespace} --reuse-values "
                  "--set connectInject.enabled=false --set controller.enabled=false "
                  "--set-string 'client.extraConfig={\"check_update_interval\": \"0s\"}'"])


def _consul_controller_off(state: State) -> Step:
    active = state.consul_controller_active
    return Step(
        "Turn the Consul release's controller off (its injector stays, idled)",
        "the Consul release deletes its controller Deployment and webhook configuration; the CRDs stay (keep); "
        "the client agents do not restart",
        f"kubectl get mutatingwebhookconfiguration {state.fullname}-controller-mutating-webhook-configuration (NotFound)",
        TODO if active else DONE, "the Consul controller is still active" if active else "",
        commands=[f"helm upgrade {state.release} hashicorp/consul -n {state.namespace} --reuse-values "
                  "--set controller.enabled=false"])


def _repoint(state: State) -> Step:
    if not state.acls:
        status, note = NOT_NEEDED, "no ACLs"
    elif state.our_acl_job_done is None:
        status, note = TODO, "our acl-init has not run yet"
    elif state.consul_injector_active:
        status, note = TODO, "the Consul release still writes the auth method on each of its upgrades"
    elif state.consul_revision is None:
        status, note = TODO, ("cannot tell from the cluster (no Helm release Secret of the Consul release): "
                              "check the auth method as below, then re-run this step's command")
    elif state.our_acl_job_done > state.consul_revision:
        status, note = DONE, "our acl-init ran (our release upgraded) after the Consul release's latest revision"
    else:
        status, note = TODO, "our acl-init last ran before the Consul release's latest revision"
    return Step(
        "Re-point the auth method at our ServiceAccount (our ACL job)",
        f"our acl-init Job writes {state.fullname}-k8s-auth-method with our own ServiceAccount's JWT; from then on "
        "the kept Consul ServiceAccount is no longer needed; the side-by-side window is over",
        f"consul acl auth-method read -name {state.fullname}-k8s-auth-method (the JWT is our ServiceAccount's); "
        "a newly created injected pod reaches Running",
        status, note,
        commands=[f"helm upgrade {state.ours or '<ours>'} <our chart> -n {state.namespace} --reuse-values "
                  f"--set {SIDE_BY_SIDE}=false"])


def _move_crds(state: State) -> Step:
    ours = state.ours
    to_move = [n for n, crd in state.crds.items()
               if not ours or owner(crd) != (ours, state.namespace) or label(crd, MANAGED_BY) != "Helm"]
    status = NOT_NEEDED if not state.crds else (TODO if to_move else DONE)

    def patches() -> list[Change]:
        if not ours:
            raise MigrateError("our release is not installed: install it first (the step above), then run migrate again")
        if state.consul_controller_active:
            raise MigrateError(
                f"the Consul release still renders the CRDs ({state.fullname}-controller is active): moving them now "
                "would be undone on its next upgrade. Fix: turn its controller off first (the step above).")
        return [Change("CustomResourceDefinition", n, None,
                       {RELEASE_NAME: ours, RELEASE_NAMESPACE: state.namespace}, {MANAGED_BY: "Helm"}) for n in to_move]

    return Step(
        "Move the CRDs' Helm ownership to our release",
        f"sets {RELEASE_NAME}={ours or '<ours>'} and {RELEASE_NAMESPACE}={state.namespace} (label {MANAGED_BY}=Helm) "
        "on the CRDs, so our next `helm upgrade` adopts them instead of failing with \"invalid ownership metadata\"; "
        "their custom resources are untouched. Instead of this step, Helm >= 3.17 can take them over itself: "
        "pass --take-ownership to the next step's helm upgrade (use Helm >= 3.18.0: on 3.17.x it may leave the "
        "old annotations, helm/helm#30622)",
        "kubectl get crd " + _names(state, list(state.crds)) + " -o custom-columns=NAME:.metadata.name,"
        "RELEASE:.metadata.annotations.meta\\.helm\\.sh/release-name",
        status, "no consul.hashicorp.com CRD exists" if not state.crds else
        f"{len(to_move)} CRD(s) not yet ours" if to_move else f'every CRD is owned by "{ours}"', auto=True,
        commands=[f"kubectl annotate crd {_names(state, to_move)} {RELEASE_NAME}={ours or '<ours>'} "
                  f"{RELEASE_NAMESPACE}={state.namespace} --overwrite"],
        patches=patches)


def _our_controller(state: State) -> Step:
    needed = bool(state.crds)
    return Step(
        "Turn our controller on",
        "our chart renders the (adopted) CRDs and runs the config-entry controller: the custom resources carry the "
        "same finalizer and source datacenter, so it finds them Synced and writes nothing to Consul",
        "kubectl get servicedefaults,serviceintentions,proxydefaults -A (SYNCED True for each)",
        NOT_NEEDED if not needed else DONE if state.our_controller_ready else TODO,
        "no consul.hashicorp.com CRD exists" if not needed else "",
        commands=[f"helm upgrade {state.ours or '<ours>'} <our chart> -n {state.namespace} --reuse-values "
                  "--set controller.enabled=true"])


def _cleanup(state: State) -> Step:
    left = [(k, n, ns) for k, n, ns, _ in state.auth_objects]
    return Step(
        "Remove the kept auth-method ServiceAccount and RBAC (after the auth method is re-pointed)",
        "deletes the orphans step 2 kept once step 5 has re-pointed the auth method (migrate never deletes anything: run it yourself)",
        f"kubectl -n {state.namespace} get sa {state.fullname}-connect-injector-authmethod-svc-account (NotFound)",
        TODO if left else DONE, "once the auth method is re-pointed" if left else "nothing left", optional=True,
        commands=[f"kubectl delete {k.lower()} {'-n ' + ns + ' ' if ns else ''}{n}" for k, n, ns in left])


def option_of(state: State) -> str:
    """B when the Consul release has gateways (they need its injector on) or its injector is
    already idled (the user chose B); else A."""
    return "B" if state.gateways or state.injector_idle else "A"


def plan(state: State) -> tuple[str, list[Step]]:
    option = option_of(state)
    if option == "A":
        return option, [_keep_crds(state), _keep_auth_method(state), _install_ours(state, option),
                        _consul_off(state), _repoint(state), _move_crds(state), _our_controller(state),
                        _cleanup(state)]
    return option, [_keep_crds(state), _idle_injector(state), _install_ours(state, option),
                    _consul_controller_off(state), _move_crds(state), _our_controller(state)]
