"""`connect-inject explain`: why each pod would or would not be injected, step by step.

It answers the most common question about mesh injectors ("why wasn't my pod injected?") from the
same `review()` the webhook runs: the decision steps come from `decide()`, the settings and their
sources from the Plan, and what would be added from applying the patch. Nothing is recomputed here.
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import jsonpatch

from generator.inject.annotations import CONSUL_DNS, ENABLE_METRICS, TRANSPARENT_PROXY, Spec
from generator.inject.patch import PROBES, upstream_env
from generator.base.podcontract import INJECTED_NAMES
from generator.values.config import Config
from generator.inject.plan import Plan
from generator.inject.review import NamespaceLabels, review
from generator.inject.workloads import admission_request, misplaced_warnings, pod_sites

EXIT_INJECTED, EXIT_DENIED, EXIT_SKIPPED = 0, 1, 3


@dataclass
class Report:
    object: str
    namespace: str
    outcome: str  # injected | skipped | denied | error
    reason: str
    sentence: str
    message: str = ""
    steps: list[dict] = field(default_factory=list)
    injected: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def explain_stream(docs: list[Any], config: Config, namespace: str | None, labels: NamespaceLabels) -> list[Report]:
    """One report per pod or pod template in `docs`."""
    reports = []
    for doc in docs:
        for site in pod_sites(doc, namespace):
            pod = site.pod()
            result = review(admission_request(pod, site.namespace), config, labels)
            response = result.review["response"]
            decision = result.decision
            report = Report(
                object=site.name,
                namespace=site.namespace,
                outcome=result.outcome,
                reason=result.reason,
                sentence=decision.sentence if decision and result.outcome in ("injected", "skipped") else "",
                message="" if response["allowed"] else response["status"]["message"],
                steps=[asdict(step) for step in decision.steps] if decision else [],
                warnings=misplaced_warnings(site.obj) + list(result.warnings),
            )
            if result.outcome == "injected" and result.plan is not None:  # an injected result has its plan
                after = jsonpatch.apply_patch(pod, json.loads(base64.b64decode(response["patch"])))
                report.injected = _injected(pod, after, result.plan)
            reports.append(report)
    return reports


def _names(pod: dict, field_: str) -> list[str]:
    return [item.get("name", "") for item in (pod.get("spec") or {}).get(field_) or []]


def _injected(before: dict, after: dict, plan: Plan) -> dict[str, Any]:
    """What injection adds, read off the patched pod, and the settings that shaped it."""
    # Injected names count even when the pod declared them (a per-pod override).
    added = {f: [n for n in _names(after, f) if n not in _names(before, f) or n in INJECTED_NAMES]
             for f in ("initContainers", "containers", "volumes")}
    env = [f"{e['name']}={e.get('value', '')}" for e in upstream_env(plan)]
    return {
        **added,
        "transparentProxy": {"enabled": plan.tproxy, "source": _source(plan, TRANSPARENT_PROXY)},
        "overwriteProbes": plan.tproxy and plan.overwrite_probes and _has_http_probe(before),
        "consulDNS": {"enabled": plan.consul_dns and plan.tproxy, "source": _source(plan, CONSUL_DNS)},
        "metrics": {"enabled": plan.metrics, "merging": plan.merging, "source": _source(plan, ENABLE_METRICS),
                    "scrapePort": plan.prometheus_scrape_port if plan.metrics else None},
        "nativeSidecar": plan.native_sidecar,
        "servicePort": plan.service_port,
        "upstreamEnv": env,
        "consulNamespace": plan.consul_namespace,
        "extraTemplates": list(plan.extra_templates),
    }


def _has_http_probe(pod: dict) -> bool:
    """Probes are rewritten only where a container has an HTTP probe."""
    return any(isinstance(c, dict) and isinstance((c.get(probe) or {}).get("httpGet"), dict)
               for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") not in INJECTED_NAMES
               for probe, _ in PROBES)


def _source(plan: Plan, row: Spec) -> str:
    """Which annotation, namespace label or values key (the row's) decided a setting."""
    where = plan.sources.get(row.key, "values")
    if where.startswith("values "):  # the plan named the values key itself
        return where
    return f"values {row.values_text}" if where == "values" else f"{where} {row.full}"


def exit_code(reports: list[Report]) -> int:
    """0 when every pod would be injected, 1 when any would be denied, else 3."""
    if any(r.outcome in ("denied", "error") for r in reports):
        return EXIT_DENIED
    if not reports or any(r.outcome == "skipped" for r in reports):
        return EXIT_SKIPPED
    return EXIT_INJECTED


def as_json(reports: list[Report]) -> str:
    return json.dumps([asdict(r) for r in reports], indent=2) + "\n"


def as_text(reports: list[Report]) -> str:
    if not reports:
        return "no pods or pod templates found\n"
    return "\n".join(_text(r) for r in reports)


_HEADLINE = {"injected": "would be injected", "skipped": "would not be injected", "denied": "would be refused", "error": "cannot be injected"}


def _text(r: Report) -> str:
    lines = [f"{r.object} in namespace {r.namespace}: {_HEADLINE[r.outcome]} ({r.reason})"]
    if r.sentence:
        lines.append(f"  because {r.sentence}")
    if r.message:
        lines.append(f"  {r.message}")
    if r.steps:
        lines.append("  decision:")
        width = max(len(s["check"]) for s in r.steps)
        lines += [f"    {i}. {s['check']:<{width}}  {s['verdict']:<8}  {s['detail']}" for i, s in enumerate(r.steps, 1)]
    if r.injected:
        i = r.injected
        on = lambda flag: "on" if flag else "off"  # noqa: E731
        lines.append("  would add:")
        lines.append(f"    init containers: {', '.join(i['initContainers']) or '-'}")
        lines.append(f"    containers: {', '.join(i['containers']) or '-'}")
        lines.append(f"    volumes: {', '.join(i['volumes']) or '-'}")
        lines.append(f"    transparent proxy: {on(i['transparentProxy']['enabled'])} (from {i['transparentProxy']['source']}); probes rewritten: {'yes' if i['overwriteProbes'] else 'no'}")
        lines.append(f"    consul DNS: {on(i['consulDNS']['enabled'])} (from {i['consulDNS']['source']})")
        metrics = i["metrics"]
        port = f", scraped on :{metrics['scrapePort']}" if metrics["enabled"] else ""
        lines.append(f"    metrics: {on(metrics['enabled'])} (from {metrics['source']}){port}; merging: {on(metrics['merging'])}")
        lines.append(f"    native sidecar: {'yes' if i['nativeSidecar'] else 'no'}")
        lines.append(f"    service port: {i['servicePort'] if i['servicePort'] is not None else '-'}")
        if i["consulNamespace"]:
            lines.append(f"    consul namespace: {i['consulNamespace']}")
        if i["extraTemplates"]:
            lines.append(f"    extra templates: {', '.join(i['extraTemplates'])}")
        lines.append(f"    upstream env: {', '.join(i['upstreamEnv']) or '-'}")
    if r.warnings:
        lines.append("  warnings:")
        lines += [f"    - {w}" for w in r.warnings]
    return "\n".join(lines) + "\n"
