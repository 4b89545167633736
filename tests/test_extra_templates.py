"""Named custom templates: `connectInject.templates.<name>` entries that are not built-ins add
objects to pods that select them with `consul.hashicorp.com/extra-templates`, in order."""

from __future__ import annotations

import pytest
import yaml

from engine_helpers import P, container, denial, inject, load_config, make_pod, run, validate_k8s
from generator.inject import engine
from generator.base.errors import ConfigError

LOG_SHIPPER = """\
containers:
  - name: log-shipper
    image: fluent/fluent-bit:3.0
    args: ["--service", {{ (plan.service_name or pod.metadata.name) | tojson }}]
    volumeMounts:
      - name: app-logs
        mountPath: /logs
        readOnly: true
volumes:
  - name: app-logs
    emptyDir: {}
"""
INIT_WAIT = """\
initContainers:
  - name: wait-for-db
    image: busybox:1.36
    command: ["sh", "-c", "until nc -z 127.0.0.1 5432; do sleep 1; done"]
"""


def _config(tmp_path, **templates):
    values = tmp_path / "templates.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": templates}}))
    return engine.load([str(values)], [], environ={})


def test_selected_templates_are_applied_in_order_after_the_builtins(tmp_path):
    config = _config(tmp_path, **{"log-shipper": LOG_SHIPPER, "wait-for-db": INIT_WAIT})
    out = inject(make_pod({P + "extra-templates": "log-shipper, wait-for-db"}), config)
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "envoy-sidecar", "log-shipper"]
    assert [c["name"] for c in out["spec"]["initContainers"]] == ["copy-consul-bin", "consul-connect-inject-init", "wait-for-db"]
    assert [v["name"] for v in out["spec"]["volumes"]] == ["consul-connect-inject-data", "app-logs"]
    assert container(out, "log-shipper")["args"] == ["--service", "web"]
    validate_k8s(out)


def test_pods_that_do_not_select_them_are_unchanged(tmp_path):
    out = inject(make_pod(), _config(tmp_path, **{"log-shipper": LOG_SHIPPER}))
    assert [c["name"] for c in out["spec"]["containers"]] == ["web", "envoy-sidecar"]


def test_unknown_template_name_is_a_400_listing_the_known_ones(tmp_path):
    code, message = denial(run(make_pod({P + "extra-templates": "log-shiper"}), _config(tmp_path, **{"log-shipper": LOG_SHIPPER})))
    assert code == 400 and "log-shiper" in message and "known extra templates: log-shipper" in message


def test_template_that_fails_for_one_pod_is_a_400_naming_it(tmp_path):
    # Renders for the sample pods at start-up (they have a port) but not for a pod without ports.
    template = "containers:\n  - name: probe\n    image: busybox\n    args: [{{ pod.spec.containers[0].ports[0].containerPort | tojson }}]\n"
    config = _config(tmp_path, **{"port-probe": template})
    assert run(make_pod({P + "extra-templates": "port-probe"}), config).outcome == "injected"
    pod = make_pod({P + "extra-templates": "port-probe"}, containers=[{"name": "web", "image": "w"}])
    code, message = denial(run(pod, config))
    assert code == 400 and message.startswith("connectInject.templates.port-probe: line 4:")


def test_template_errors_found_at_load_name_template_and_line(tmp_path):
    bad = "containers:\n  - name: x\n    image: {{ pod.spec.nodeName | tojson }}\n"
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, **{"node": bad})
    assert info.value.problems[0].startswith("connectInject.templates.node: line 3:")


@pytest.mark.parametrize("body,problem", [
    ("containers: {name: x}", "containers: expected a list"),
    ("containers:\n  - image: x", "containers[0].name: required"),
    ("containers:\n  - name: x", "containers[0].image: required"),
    ("sidecars: []", "must render a YAML map with any of containers, initContainers, volumes"),
    ("containers: [unclosed", "rendered invalid YAML"),
])
def test_templates_with_invalid_output_fail_at_load_naming_them(tmp_path, body, problem):
    with pytest.raises(ConfigError) as info:
        _config(tmp_path, **{"broken": body})
    assert any(p.startswith("connectInject.templates.broken") and problem in p for p in info.value.problems), info.value.problems


def test_check_values_reports_a_broken_extra_template(tmp_path):
    import subprocess
    import sys

    from engine_helpers import ROOT

    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"log-shipper": "containers:\n  - name: {{ oops\n"}}}))
    proc = subprocess.run([sys.executable, "-m", "generator", "check-values", "--values", str(values)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1 and proc.stderr.startswith("connectInject.templates.log-shipper: line 2:")


def test_bad_template_name_in_annotation():
    assert "is not a template name" in denial(run(make_pod({P + "extra-templates": "Log_Shipper"})))[1]


# --- templates render sandboxed (security review, issue 8 finding 6) ---------------------------

ESCAPES = [
    "{{ cycler.__init__.__globals__.os.system('touch ' ~ marker) }}",
    "{{ config.__class__.__init__.__globals__['os'].system('touch ' ~ marker) }}",
    "{{ config.templates.env.from_string(\"{{ 1 }}\").render() }}",
    "{% set x = plan.upstreams.__class__ %}{{ x.__subclasses__() }}",
    "{{ pod.spec.containers.append(1) }}",
]


@pytest.mark.parametrize("body", ESCAPES)
def test_check_values_never_runs_code_from_a_values_file(tmp_path, body):
    """Reproducer: a contributed values file whose template reached `os` ran `id` in CI's
    `check-values`. Every template renders in Jinja's immutable sandbox: the file is refused,
    naming the template, and nothing runs."""
    import subprocess
    import sys

    marker = tmp_path / "pwned"
    values = tmp_path / "contributed.yaml"
    template = "{% set marker = " + repr(str(marker)) + " %}name: envoy-sidecar\nimage: e\nx: '" + body + "'\n"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"envoy-sidecar": template}}}))
    proc = subprocess.run([sys.executable, "-m", "generator", "check-values", "--values", str(values)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "connectInject.templates.envoy-sidecar" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()


@pytest.mark.parametrize("body", ["{{ 'a' * 4000000000 }}", "{{ [1] * 400000000 }}", "{{ 2 ** 100000000 }}"])
def test_a_template_cannot_take_the_memory_of_check_values(tmp_path, body):
    """Reviewer's find: a contributed values file could OOM a CI job through a template."""
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"connectInject": {"templates": {"envoy-sidecar": "name: envoy-sidecar\nimage: e\nx: '" + body + "'\n"}}}))
    with pytest.raises(ConfigError) as exc:
        config_mod_load([str(values)])
    assert "connectInject.templates.envoy-sidecar" in str(exc.value) and "too large for a template" in str(exc.value)


def config_mod_load(files):
    from generator.inject import engine

    return engine.load(files, [], environ={})
