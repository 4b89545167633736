"""Golden cases (tests/golden/cases.yaml): the docs' examples injected under several values sets.

`python -m tests.golden_cases --write` (`make golden`) rewrites every `<case>.injected.yaml` from
the in-process path; test_golden.py checks that the CLI and the HTTPS webhook produce the same bytes.
The expected text is the YAML stream on stdout followed by the warnings on stderr, if any.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

GOLDEN = Path(__file__).resolve().parent / "golden"
ROOT = GOLDEN.parent.parent


@dataclass(frozen=True)
class Case:
    name: str
    input: Path
    sets: tuple[str, ...] = ()
    namespace: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def expected_path(self) -> Path:
        return GOLDEN / f"{self.name}.injected.yaml"


def cases() -> list[Case]:
    spec = yaml.safe_load((GOLDEN / "cases.yaml").read_text())
    return [
        Case(
            name=name,
            input=GOLDEN / body["input"],
            sets=tuple(body.get("set") or ()),
            namespace=body.get("namespace"),
            env={k: str(GOLDEN / v) if k == "CONSUL_CACERT" else str(v) for k, v in (body.get("env") or {}).items()},
        )
        for name, body in spec.items()
    ]


def in_process(case: Case, reviewer=None) -> str:
    """The case through `inject_stream` in this process (or through `reviewer`, e.g. HTTPS)."""
    from generator.inject import engine
    from generator.inject.review import no_labels
    from generator.inject.workloads import inject_stream
    from generator.base.yamlio import dump_stream, read_stream

    config = engine.load([], list(case.sets), environ=case.env)
    outcome = inject_stream(read_stream(str(case.input)), config, case.namespace, no_labels, reviewer)
    return render(dump_stream(outcome.objects), outcome.warnings + outcome.errors)


def via_cli(case: Case) -> str:
    """The case through the `connect-inject inject` command."""
    args = [sys.executable, "-m", "generator", "inject", "-f", str(case.input)]
    for expr in case.sets:
        args += ["--set", expr]
    if case.namespace:
        args += ["--namespace", case.namespace]
    env = {k: v for k, v in os.environ.items() if k not in ("CONSUL_CACERT",) and not k.endswith("_DNS_SERVICE_HOST")}
    proc = subprocess.run(args, capture_output=True, text=True, env={**env, **case.env}, cwd=ROOT, timeout=60)
    if proc.returncode not in (0, 1):
        raise AssertionError(f"connect-inject inject exited {proc.returncode}: {proc.stderr}")
    return render(proc.stdout, proc.stderr.splitlines())


def render(stream: str, messages: list[str]) -> str:
    tail = "".join(f"# {line}\n" for line in messages)
    return stream + (f"# stderr:\n{tail}" if tail else "")


EXPLAIN = GOLDEN / "explain"


def explain_cases() -> dict[str, list[str]]:
    return {name: body["args"] for name, body in yaml.safe_load((EXPLAIN / "cases.yaml").read_text()).items()}


def explain_output(args: list[str]) -> str:
    """`connect-inject explain ARGS` as text: stdout, stderr and the exit code."""
    env = {k: v for k, v in os.environ.items() if k != "CONSUL_CACERT" and not k.endswith("_DNS_SERVICE_HOST")}
    proc = subprocess.run([sys.executable, "-m", "generator", "explain", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=60, env=env)
    return render(proc.stdout, proc.stderr.splitlines()) + f"# exit code: {proc.returncode}\n"


def main() -> None:
    if "--write" not in sys.argv:
        sys.exit("usage: python -m tests.golden_cases --write")
    for case in cases():
        case.expected_path.write_text(in_process(case))
        print(f"wrote {case.expected_path.relative_to(ROOT)}")
    for name, args in explain_cases().items():
        path = EXPLAIN / f"{name}.txt"
        path.write_text(explain_output(args))
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
