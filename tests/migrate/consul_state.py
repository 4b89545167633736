"""A cluster as the Consul chart (consul-k8s v0.37.0) leaves it, and the user's Helm steps, for the
fake Kubernetes API server (tests/fakes/kube_api.py).

Shapes and names from install-beside-consul.md and chart-reference.md: release "consul" in
namespace "consul", fullname C = "consul-consul"; every object Helm rendered carries
`meta.helm.sh/release-name|namespace` and `app.kubernetes.io/managed-by: Helm`. The user's `helm
upgrade`s are played as Helm 3 performs them (install-beside-consul.md §2.5): an object dropped from
the release's manifest is deleted unless the live object carries `helm.sh/resource-policy: keep`;
deleting a CRD deletes its custom resources.
"""

from __future__ import annotations

import itertools
from typing import Any

from generator.migrate.cluster import CRD_NAMES
from tests.fakes.kube_api import RESOURCES, FakeKubeAPI, Resource

Obj = dict[str, Any]
NS = "consul"
RELEASE = "consul"
C = "consul-consul"
OURS = "mesh"
OUR_C = "mesh-consul"
GV = "consul.hashicorp.com/v1alpha1"
KINDS = {"ingressgateways": "IngressGateway", "meshes": "Mesh", "partitionexports": "PartitionExports",
         "proxydefaults": "ProxyDefaults", "servicedefaults": "ServiceDefaults",
         "serviceintentions": "ServiceIntentions", "serviceresolvers": "ServiceResolver",
         "servicerouters": "ServiceRouter", "servicesplitters": "ServiceSplitter",
         "terminatinggateways": "TerminatingGateway"}

MIGRATE_RESOURCES: tuple[Resource, ...] = RESOURCES + (
    Resource("", "v1", "serviceaccounts", "ServiceAccount"),
    Resource("", "v1", "secrets", "Secret"),
    Resource("", "v1", "configmaps", "ConfigMap"),
    Resource("apps", "v1", "deployments", "Deployment", status=True),
    Resource("batch", "v1", "jobs", "Job", status=True),
    Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
             namespaced=False, status=True),
    Resource("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations",
             "MutatingWebhookConfiguration", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", namespaced=False),
    Resource("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", namespaced=False),
) + tuple(Resource("consul.hashicorp.com", "v1alpha1", plural, kind, status=True) for plural, kind in KINDS.items())


def helm_meta(name: str, release: str = RELEASE, namespace: str | None = NS, labels: dict[str, str] | None = None,
              chart: str = "consul-helm", **annotations: str) -> Obj:
    """Metadata as Helm stamps it on a rendered object of `release`."""
    meta: Obj = {"name": name,
                 "labels": {"app": "consul", "chart": chart, "heritage": "Helm", "release": release,
                            "app.kubernetes.io/managed-by": "Helm", **(labels or {})},
                 "annotations": {"meta.helm.sh/release-name": release, "meta.helm.sh/release-namespace": NS,
                                 **annotations}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def crd(name: str, **meta: Any) -> Obj:
    plural = name.split(".")[0]
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": meta or helm_meta(name, namespace=None, labels={"component": "crd"}),
            "spec": {"group": "consul.hashicorp.com", "scope": "Namespaced",
                     "names": {"kind": KINDS[plural], "plural": plural, "singular": plural.rstrip("s"),
                               "listKind": KINDS[plural] + "List"},
                     "versions": [{"name": "v1alpha1", "served": True, "storage": True,
                                   "schema": {"openAPIV3Schema": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}]}}


def webhook_config(name: str, service: str, selector: Obj | None = None, meta: Obj | None = None) -> Obj:
    hook: Obj = {"name": f"{name}.consul.hashicorp.com", "sideEffects": "None", "admissionReviewVersions": ["v1"],
                 "failurePolicy": "Fail",
                 "clientConfig": {"service": {"name": service, "namespace": NS, "path": "/mutate"}},
                 "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"]}]}
    if selector is not None:
        hook["namespaceSelector"] = selector
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
            "metadata": meta or helm_meta(name, namespace=None), "webhooks": [hook]}


def deployment(name: str, component: str, command: list[str], meta: Obj | None = None, ready: int = 1) -> Obj:
    labels = {"app": "consul", "component": component}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": meta or helm_meta(name, labels={"component": component}),
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": component, "image": "consul-k8s",
                                                           "command": command}]}}},
            "status": {"replicas": 1, "readyReplicas": ready}}


def injector_command(allow: str | None = '"*"') -> list[str]:
    """The v0.37 injector's container command: a shell script (`-allow-k8s-namespace` only with a non-empty list)."""
    script = "consul-k8s-control-plane inject-connect \\\n  -default-inject=false \\\n"
    if allow is not None:
        script += f"  -allow-k8s-namespace={allow} \\\n"
    return ["/bin/sh", "-ec", script + "  -consul-k8s-image=hashicorp/consul-k8s-control-plane:0.37.0\n"]


def pod(name: str, namespace: str = "default") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app": name, "consul.hashicorp.com/connect-inject-status": "injected",
                                    "consul.hashicorp.com/connect-inject-managed-by": "consul-k8s-endpoints-controller"},
                         "annotations": {"consul.hashicorp.com/connect-inject-status": "injected"}},
            "spec": {"containers": [{"name": name, "image": name}, {"name": "envoy-sidecar", "image": "envoy"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.9"}}


CLOCK = itertools.count(1_700_000_000)  # Helm's createdAt label, one second per revision: runs take < 1 s


def revision(api: FakeKubeAPI, release: str, number: int) -> None:
    """Helm's release record (Secret storage, with its createdAt label): the new revision deployed,
    the previous one superseded."""
    for item in api.objects("v1", "Secret", NS):
        if item["metadata"].get("labels", {}).get("name") == release and item["metadata"]["labels"]["status"] == "deployed":
            api.patch("v1", "Secret", NS, item["metadata"]["name"], {"metadata": {"labels": {"status": "superseded"}}})
    api.create({"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
                "metadata": {"name": f"sh.helm.release.v1.{release}.v{number}", "namespace": NS,
                             "labels": {"owner": "helm", "name": release, "status": "deployed", "version": str(number),
                                        "createdAt": str(next(CLOCK))}},
                "data": {"release": "SDRzSUFBQUFBQUFBLw=="}})


def seed_consul(api: FakeKubeAPI, *, acls: bool = True, controller: bool = True, gateways: bool = False) -> None:
    """The Consul release with connectInject, controller (its ten CRDs and a few resources) and
    ACLs on, two injected pods, its client agents; optionally a mesh gateway."""
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})
    revision(api, RELEASE, 1)
    for sa in ("client", "server", "connect-injector-webhook-svc-account"):
        api.create({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": helm_meta(f"{C}-{sa}")})
    api.create(webhook_config(f"{C}-connect-injector-cfg", f"{C}-connect-injector-svc"))
    api.create(deployment(f"{C}-connect-injector-webhook-deployment", "connect-injector", injector_command()))
    api.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{C}-client-abcde", "namespace": NS,
                "labels": {"app": "consul", "component": "client", "release": RELEASE}},
                "spec": {"containers": [{"name": "consul", "image": "consul"}]}, "status": {"phase": "Running"}})
    for name in ("web-1", "api-1"):
        api.create(pod(name))
    if controller:
        for name in CRD_NAMES:
            api.create(crd(name))
        api.create(webhook_config(f"{C}-controller-mutating-webhook-configuration", f"{C}-controller-webhook"))
        api.create(deployment(f"{C}-controller", "controller", ["consul-k8s-control-plane", "controller"]))
        for plural, name in (("servicedefaults", "web"), ("servicedefaults", "api"), ("serviceintentions", "web")):
            api.create({"apiVersion": GV, "kind": KINDS[plural],
                        "metadata": {"name": name, "namespace": "default", "finalizers": ["finalizers.consul.hashicorp.com"]},
                        "spec": {}, "status": {"conditions": [{"type": "Synced", "status": "True"}]}})
    if acls:
        api.create({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": helm_meta(f"{C}-connect-injector-authmethod-svc-account")})
        api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": helm_meta(f"{C}-connect-injector-authmethod-role", namespace=None),
                    "rules": [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}]})
        for suffix, role in (("authdelegator-role-binding", "system:auth-delegator"),
                             ("serviceaccount-role-binding", f"{C}-connect-injector-authmethod-role")):
            api.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                        "metadata": helm_meta(f"{C}-connect-injector-authmethod-{suffix}", namespace=None),
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
                        "subjects": [{"kind": "ServiceAccount", "name": f"{C}-connect-injector-authmethod-svc-account",
                                      "namespace": NS}]})
        # Plain API objects server-acl-init made (not in any Helm manifest).
        for secret in ("bootstrap-acl-token", "connect-inject-acl-token", "controller-acl-token"):
            api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{C}-{secret}", "namespace": NS},
                        "data": {"token": "c2VjcmV0"}})
    if gateways:
        api.create(deployment(f"{C}-mesh-gateway", "mesh-gateway", ["consul", "connect", "envoy", "-mesh-gateway"]))


# -- the user's Helm steps, as Helm performs them -------------------------------------------------

def _kept(obj: Obj | None) -> bool:
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get("helm.sh/resource-policy") == "keep"


def helm_drop(api: FakeKubeAPI, api_version: str, kind: str, namespace: str | None, name: str) -> None:
    """An upgrade whose manifest no longer has the object: deleted unless the live one says keep."""
    obj = api.get(api_version, kind, namespace, name)
    if obj is None or _kept(obj):
        return
    if kind == "CustomResourceDefinition":  # its custom resources go with it
        plural = obj["spec"]["names"]["plural"]
        for cr in api.objects(GV, KINDS[plural]):
            api.patch(GV, KINDS[plural], cr["metadata"]["namespace"], cr["metadata"]["name"],
                      {"metadata": {"finalizers": None}})
            api.delete(GV, KINDS[plural], cr["metadata"]["namespace"], cr["metadata"]["name"])
    api.delete(api_version, kind, namespace, name)


def install_ours(api: FakeKubeAPI, *, acl_job_at: str | None = None) -> None:
    """`helm install mesh <our chart> --set global.consulRelease=consul ...`: our injector (ready),
    its webhook configuration, and, with ACLs, our acl-init Job (a finished hook)."""
    chart = {"helm.sh/chart": "consul-connect-inject-0.1.0", "app.kubernetes.io/instance": OURS}
    api.create(webhook_config(f"{OUR_C}-connect-injector-cfg", f"{OUR_C}-connect-injector-svc",
                              meta=helm_meta(f"{OUR_C}-connect-injector-cfg", OURS, None, chart, "consul-connect-inject-helm")))
    api.create(deployment(f"{OUR_C}-connect-injector-webhook-deployment", "connect-injector", ["connect-inject", "serve"],
                          meta=helm_meta(f"{OUR_C}-connect-injector-webhook-deployment", OURS, NS,
                                         {**chart, "component": "connect-injector",
                                          "app.kubernetes.io/component": "connect-injector"},
                                         "consul-connect-inject-helm")))
    revision(api, OURS, 1)
    acl_job(api, acl_job_at or "2020-01-01T00:00:00Z")


def acl_job(api: FakeKubeAPI, completed: str) -> None:
    """Our acl-init hook Job (re-created on each upgrade, hooks carry no meta.helm.sh annotations)."""
    name = f"{OUR_C}-acl-init"
    if api.get("batch/v1", "Job", NS, name) is not None:
        api.delete("batch/v1", "Job", NS, name)
    api.create({"apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": name, "namespace": NS,
                             "labels": {"app.kubernetes.io/instance": OURS, "component": "acl-init"}},
                "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                    {"name": "acl-init", "image": "connect-inject",
                     "args": ["acl-init", "--consul-release", RELEASE, "--no-chart-defaults"]}]}}},
                "status": {"succeeded": 1, "completionTime": completed}})


def upgrade_ours(api: FakeKubeAPI, number: int = 2) -> None:
    """`helm upgrade mesh ...`: a new deployed revision (its acl-init hook succeeded; the chart's
    hook-delete-policy removes the succeeded Job)."""
    revision(api, OURS, number)


def consul_injector_and_controller_off(api: FakeKubeAPI) -> None:
    """`helm upgrade consul --set connectInject.enabled=false --set controller.enabled=false`."""
    revision(api, RELEASE, 2)
    for api_version, kind, ns, name in (
            ("apps/v1", "Deployment", NS, f"{C}-connect-injector-webhook-deployment"),
            ("apps/v1", "Deployment", NS, f"{C}-controller"),
            ("v1", "ServiceAccount", NS, f"{C}-connect-injector-webhook-svc-account"),
            ("v1", "ServiceAccount", NS, f"{C}-connect-injector-authmethod-svc-account"),
            ("rbac.authorization.k8s.io/v1", "ClusterRole", None, f"{C}-connect-injector-authmethod-role"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None,
             f"{C}-connect-injector-authmethod-authdelegator-role-binding"),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", None,
             f"{C}-connect-injector-authmethod-serviceaccount-role-binding"),
            *(("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, n) for n in CRD_NAMES),
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, f"{C}-connect-injector-cfg"),
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
             f"{C}-controller-mutating-webhook-configuration")):
        helm_drop(api, api_version, kind, ns, name)


def consul_controller_off(api: FakeKubeAPI) -> None:
    """`helm upgrade consul --set controller.enabled=false` (option B)."""
    revision(api, RELEASE, 3)
    for api_version, kind, ns, name in (
            ("apps/v1", "Deployment", NS, f"{C}-controller"),
            *(("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, n) for n in CRD_NAMES),
            ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None,
             f"{C}-controller-mutating-webhook-configuration")):
        helm_drop(api, api_version, kind, ns, name)


def idle_consul_injector(api: FakeKubeAPI) -> None:
    """`helm upgrade consul` with connectInject.k8sAllowNamespaces=[] and a namespaceSelector no
    namespace matches (option B)."""
    revision(api, RELEASE, 2)
    hook = api.get("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration", None, f"{C}-connect-injector-cfg")
    assert hook is not None
    hook["webhooks"][0]["namespaceSelector"] = {"matchLabels": {"consul.hashicorp.com/idle-consul-chart-injector": "true"}}
    api.replace(hook)
    dep = api.get("apps/v1", "Deployment", NS, f"{C}-connect-injector-webhook-deployment")
    assert dep is not None
    dep["spec"]["template"]["spec"]["containers"][0]["command"] = injector_command(None)
    api.replace(dep)


def our_controller_on(api: FakeKubeAPI) -> None:
    """`helm upgrade mesh --set controller.enabled=true`: Helm's ownership check passes only for CRDs
    annotated for our release (else "invalid ownership metadata"); it then runs our controller."""
    for name in CRD_NAMES:
        obj = api.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, name)
        if obj is not None:
            notes = obj["metadata"].get("annotations") or {}
            assert (notes.get("meta.helm.sh/release-name"), notes.get("meta.helm.sh/release-namespace")) == (OURS, NS), \
                f'CustomResourceDefinition "{name}" exists and cannot be imported into the current release: invalid ownership metadata'
    chart = {"helm.sh/chart": "consul-connect-inject-0.1.0", "app.kubernetes.io/instance": OURS,
             "component": "controller", "app.kubernetes.io/component": "controller"}
    api.create(deployment(f"{OUR_C}-controller", "controller", ["connect-inject", "controller"],
                          meta=helm_meta(f"{OUR_C}-controller", OURS, NS, chart, "consul-connect-inject-helm")))
    revision(api, OURS, 3)
