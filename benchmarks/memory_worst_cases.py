"""Memory and time of review() on the security review's worst cases (issue 8), one process each.

Each case runs in a fresh Python process: the config is loaded and a normal pod reviewed first
(baseline RSS), then the case; the table shows the request size, the answer's size, the outcome,
the wall time and how much the peak RSS grew over the baseline. Run by `make bench`.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

P = "consul.hashicorp.com/"


def _pod(annotations: dict[str, str], containers: int = 1) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "annotations": {P + "connect-inject": "true", **annotations}},
        "spec": {"containers": [{"name": f"c{i}", "image": "w", "ports": [{"containerPort": 8080 + i}]} for i in range(containers)]},
    }


def _review(pod: dict) -> dict:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "namespace": "default", "operation": "CREATE", "object": pod}}


def _upstreams(count: int) -> str:
    return ",".join(f"s{i}:{1000 + i % 60000}" for i in range(count))


CASES = {
    # name: (what the review found, the requests to send)
    "upstreams": ("10,000 upstreams x 100 containers (was 141 MiB answer, 886 MiB RSS)",
                  lambda: [_review(_pod({P + "connect-service-upstreams": _upstreams(10_000)}, 100))]),
    "upstreams-at-cap": ("1,000 upstreams x 1,000 containers (45 KB gzip; was 1.1 GiB)",
                         lambda: [_review(_pod({P + "connect-service-upstreams": _upstreams(1_000)}, 1_000))]),
    "envoy-args": ("envoy-extra-args with 500k tokens (was 358 MiB)",
                   lambda: [_review(_pod({P + "envoy-extra-args": "-l " * 500_000}))]),
    "template-names": ("extra-templates: one name 500k times (was 6 s, 377 MiB)",
                       lambda: [_review(_pod({P + "extra-templates": ",".join(["log-shipper"] * 500_000)}))]),
    "unknown-keys": ("60,000 unknown annotation keys, 2.8 MiB (was 27.6 s)",
                     lambda: [_review(_pod({f"{P}connect-servic{i}x{'y' * 20}": "x" for i in range(60_000)}))]),
    "cache": ("30 pods with different 16 KB envoy-extra-args (was 240 KB: +220 MiB, never freed)",
              lambda: [_review(_pod({P + "envoy-extra-args": f"--x{n} " + "a" * 16_000})) for n in range(30)]),
}


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_case(name: str) -> dict:
    """In this process: baseline, then the case; a JSON line of figures."""
    from generator.inject import engine
    from generator.inject.review import review

    config = engine.load(sets=["connectInject.templates.log-shipper=containers: [{name: logs, image: l}]"])
    review(_review(_pod({})), config)
    requests = CASES[name][1]()
    bodies = [json.dumps(r) for r in requests]
    baseline = _rss_mib()
    start = time.perf_counter()
    answers = [review(json.loads(body), config) for body in bodies]
    elapsed = time.perf_counter() - start
    return {
        "request_bytes": max(len(b) for b in bodies),
        "answer_bytes": max(len(json.dumps(a.review)) for a in answers),
        "outcome": ", ".join(sorted({a.outcome for a in answers})),
        "seconds": elapsed,
        "rss_growth_mib": _rss_mib() - baseline,
    }


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--case":
        print(json.dumps(run_case(sys.argv[2])))
        return 0
    print("review() on the security review's worst cases (fresh process each; peak RSS growth over a warmed-up baseline)")
    print(f"{'case':<18} {'request':>10} {'answer':>10} {'outcome':<9} {'time':>9} {'RSS +MiB':>9}  reproducer")
    for name, (what, _) in CASES.items():
        proc = subprocess.run([sys.executable, __file__, "--case", name], capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            print(f"{name:<18} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        f = json.loads(proc.stdout)
        print(f"{name:<18} {f['request_bytes']:>10} {f['answer_bytes']:>10} {f['outcome']:<9} "
              f"{f['seconds'] * 1000:>7.1f}ms {f['rss_growth_mib']:>9.1f}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
