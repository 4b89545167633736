"""Nothing a pod author (or a values file) writes can run as shell code in the init container.

The `consul-connect-inject-init` container runs its script with `/bin/sh -ec` as root (privileged
with transparent proxy). Every value that reaches the script must arrive at the program it is meant
for as exactly one argv element, unchanged, and expand nothing (design.md "Init script quoting",
reference D6). The tests here:
- render pods and values carrying hostile text, check the script with `sh -n` and with `shlex`;
- EXECUTE the rendered script with stub `consul-k8s-control-plane` and `consul` binaries that record
  their argv, in a temp dir, and assert each value reached its stub as one literal argv element and
  that no marker file was created (PATH holds only the stubs plus what the script runs and
  cat/touch/id, so a payload that did run could create its marker);
- run the script against a symlink planted at the Envoy bootstrap's path (it must not write through it);
- deny (400, naming the annotation) the values that fail validation;
- check `shell_quote` over arbitrary text with hypothesis.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_helpers import P, admission, container, init_script, load_config, patched
from generator.inject.annotations import TABLE
from generator.base.errors import ConfigError
from generator.inject.render import shell_quote
from generator.inject.review import review

MOUNT = "/consul/connect-inject"
SA_TOKEN_MOUNT = {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}
ENV = {"CONSUL_CONSUL_DNS_SERVICE_HOST": "10.96.0.10"}

# Hostile text. If any of it were expanded or split by the shell, the marker file ($PWNED or ./pwned)
# would appear, or the value would not reach its stub as one unchanged argv element.
PAYLOADS = [
    '$(touch "$PWNED")',
    '`touch "$PWNED"`',
    '; touch "$PWNED"',
    "; rm -rf /",
    '"; touch "$PWNED"; echo "',
    "'; touch \"$PWNED\"; '",
    "\\",
    '\\"; touch "$PWNED" #',
    'a\ntouch "$PWNED"',
    '\\\ntouch "$PWNED"',
    "${IFS}touch${IFS}pwned",
    "$((6*7))",
    "$PWNED",
    "' \" ` $ \\",
    'x\\$(touch "$PWNED")',
    '$(touch "$PWNED")\\',
    '&& touch "$PWNED" &',
    '| touch "$PWNED"',
    "> pwned",
    "a b\tc  d",
    "*",
    "~root",
    "-bootstrap",
    "ünïcödé ☃ 😀",
]
IDS = [f"p{i}" for i in range(len(PAYLOADS))]


# ---------------------------------------------------------------------------------------------
# Running the rendered script

class Sandbox:
    """A temp dir where the init script runs against stubs that record their argv."""

    STUB = '#!/bin/sh\nprintf "%s\\0" "{name}" "$@" > "$STUB_RECORD/$$.{name}"\n'

    def __init__(self, root: Path):
        self.root = root
        self.mount = root / "ci"
        self.bin = root / "bin"
        self.record = root / "record"
        for d in (self.mount, self.bin, self.record):
            d.mkdir()
        self._stub(self.bin / "consul-k8s-control-plane")
        self._stub(self.mount / "consul")
        (self.mount / "proxyid").write_text("web-sidecar-proxy")
        (root / "victim").write_text("still here")
        # What a payload needs to leave a mark, and what the script itself runs (the bootstrap
        # is written to a temporary file and renamed into place).
        for tool in ("cat", "touch", "id", "mktemp", "chmod", "rm", "mv"):
            os.symlink(shutil.which(tool), self.bin / tool)
        self.before = self._tree()

    def _stub(self, path: Path) -> None:
        path.write_text(self.STUB.format(name=path.name))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)

    def _tree(self) -> set[str]:
        return {str(p.relative_to(self.root)) for p in self.root.rglob("*") if not p.is_relative_to(self.record)}

    def run(self, script: str) -> list[list[str]]:
        """Execute the script as the init container does (`/bin/sh -ec`); the stubs' argv lists."""
        assert str(self.root) not in script
        text = script.replace(MOUNT, str(self.mount))
        env = {"PATH": str(self.bin), "HOST_IP": "10.0.0.7", "POD_NAME": "web-0", "POD_NAMESPACE": "default",
               "STUB_RECORD": str(self.record), "PWNED": str(self.root / "pwned"), "HOME": str(self.root)}
        proc = subprocess.run(["/bin/sh", "-ec", text], env=env, cwd=self.root, capture_output=True, timeout=30)
        assert proc.returncode == 0, f"init script failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
        assert proc.stderr == b"", proc.stderr.decode(errors="replace")
        created = self._tree() - self.before - {"ci/envoy-bootstrap.yaml"}
        assert not created, f"the script created files it should not have: {sorted(created)}"
        assert (self.root / "victim").read_text() == "still here"
        calls = []
        for record in self.record.iterdir():
            calls.append([arg.decode() for arg in record.read_bytes().split(b"\0")[:-1]])
            record.unlink()
        return sorted(calls)


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def check_syntax(script: str) -> None:
    proc = subprocess.run(["/bin/sh", "-n", "-c", script], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def shlex_tokens(script: str) -> list[str]:
    """Tokens as a POSIX-ish lexer sees them (line continuations dropped). shlex keeps the
    backslash before `$` and `` ` `` inside double quotes, where sh removes it."""
    return [t for t in shlex.split(script, comments=True) if t != "\n"]


def shlex_form(value: str) -> str:
    return value.replace("$", "\\$").replace("`", "\\`")


def call(calls: list[list[str]], *prefix: str) -> list[str]:
    matches = [c for c in calls if c[: len(prefix)] == list(prefix)]
    assert len(matches) == 1, f"expected one call of {prefix}, got {calls}"
    return matches[0]


def assert_argv_element(calls: list[list[str]], prefix: tuple[str, ...], element: str) -> None:
    argv = call(calls, *prefix)
    assert element in argv, f"{element!r} did not reach {prefix[0]} as one argv element: {argv}"


def test_bootstrap_is_not_written_through_a_planted_symlink(sandbox):
    """Reproducer: a symlink at envoy-bootstrap.yaml pointing at a root-owned file outside the
    volume. The script writes a new file in the volume and renames it over the link."""
    _, script = injected_script(pod(), load_config())
    link = sandbox.mount / "envoy-bootstrap.yaml"
    link.symlink_to(sandbox.root / "victim")
    sandbox.before.add("ci/envoy-bootstrap.yaml")
    calls = sandbox.run(script)
    assert call(calls, "consul", "connect", "envoy")[-1] == "-bootstrap"
    assert (sandbox.root / "victim").read_text() == "still here"
    assert not link.is_symlink() and link.is_file()
    assert stat.S_IMODE(link.stat().st_mode) == 0o644  # Envoy (UID 5995) reads what root wrote
    assert sorted(p.name for p in sandbox.mount.iterdir()) == ["consul", "envoy-bootstrap.yaml", "proxyid"]


def test_a_directory_planted_at_the_bootstrap_path_fails_the_init_container(sandbox):
    _, script = injected_script(pod(), load_config())
    (sandbox.mount / "envoy-bootstrap.yaml").mkdir()
    text = script.replace(MOUNT, str(sandbox.mount))
    proc = subprocess.run(["/bin/sh", "-ec", text], env={"PATH": str(sandbox.bin), "STUB_RECORD": str(sandbox.record)},
                          cwd=sandbox.root, capture_output=True, timeout=30)
    assert proc.returncode != 0  # fails closed: nothing is moved into the directory
    assert list((sandbox.mount / "envoy-bootstrap.yaml").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Pods and configs

def pod(annotations: dict[str, str] | None = None, **spec) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "annotations": {P + "connect-inject": "true", **(annotations or {})}},
        "spec": {"containers": [{"name": "web", "image": "hashicorp/http-echo:latest",
                                 "ports": [{"name": "http", "containerPort": 8080}],
                                 "volumeMounts": [SA_TOKEN_MOUNT]}], **spec},
    }


ACLS = ("global.acls.manageSystemACLs=true",)
EVERYTHING = ("global.acls.manageSystemACLs=true", "global.enableConsulNamespaces=true",
              "connectInject.consulNamespaces.mirroringK8S=true", "global.adminPartitions.enabled=true",
              "connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true",
              "dns.enabled=true", "dns.enableRedirection=true")


def review_pod(p: dict, config, namespace: str = "default"):
    return review(admission(p, namespace), config)


def injected_script(p: dict, config) -> tuple[dict, str]:
    result = review_pod(p, config)
    assert result.outcome == "injected", result.review["response"]
    out = patched(p, result)
    return out, init_script(out)


# ---------------------------------------------------------------------------------------------
# Pod fields that reach the script

POD_FIELDS = {
    # name: (values, how the pod carries the value, the stub call, the argv element expected)
    "connect-service": (ACLS, lambda v: pod({P + "connect-service": v}), ("consul-k8s-control-plane", "connect-init"), "-service-name="),
    "serviceAccountName": (ACLS, lambda v: pod(serviceAccountName=v), ("consul-k8s-control-plane", "connect-init"), "-service-account-name="),
    "prometheus-scrape-path": (("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true"),
                               lambda v: pod({P + "prometheus-scrape-path": v}), ("consul", "connect", "envoy"), "-prometheus-scrape-path="),
}


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
@pytest.mark.parametrize("field", sorted(POD_FIELDS))
def test_pod_value_reaches_init_script_as_one_literal_argument(field, payload, sandbox):
    sets, make, prefix, flag = POD_FIELDS[field]
    _, script = injected_script(make(payload), load_config(*sets))
    check_syntax(script)
    assert flag + shlex_form(payload) in shlex_tokens(script)
    calls = sandbox.run(script)
    assert_argv_element(calls, prefix, flag + payload)


# ---------------------------------------------------------------------------------------------
# Values that reach the script (written by the operator, quoted all the same)

CONFIG_KEYS = {
    # key: (values with the hostile text at `key`, then the argv elements expected per stub call)
    "connectInject.overrideAuthMethodName": (
        lambda v: {"connectInject": {"overrideAuthMethodName": v}},
        lambda v: [(("consul-k8s-control-plane", "connect-init"), "-acl-auth-method=" + v)]),
    "connectInject.consulNamespaces.consulDestinationNamespace": (
        lambda v: {"global": {"enableConsulNamespaces": True}, "connectInject": {"consulNamespaces": {"consulDestinationNamespace": v}}},
        lambda v: [(("consul-k8s-control-plane", "connect-init"), "-consul-service-namespace=" + v),
                   (("consul", "connect", "envoy"), "-namespace=" + v),
                   (("consul", "connect", "redirect-traffic"), "-namespace=" + v)]),
    "connectInject.consulNamespaces.mirroringK8SPrefix": (
        lambda v: {"global": {"enableConsulNamespaces": True, "acls": {"manageSystemACLs": True}},
                   "connectInject": {"consulNamespaces": {"mirroringK8S": True, "mirroringK8SPrefix": v}}},
        lambda v: [(("consul-k8s-control-plane", "connect-init"), "-consul-service-namespace=" + v + "default"),
                   (("consul", "connect", "envoy"), "-namespace=" + v + "default")]),
    "global.adminPartitions.name": (
        lambda v: {"global": {"enableConsulNamespaces": True, "adminPartitions": {"enabled": True, "name": v}}},
        lambda v: [(("consul-k8s-control-plane", "connect-init"), "-partition=" + v),
                   (("consul", "connect", "envoy"), "-partition=" + v),
                   (("consul", "connect", "redirect-traffic"), "-partition=" + v)]),
}


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
@pytest.mark.parametrize("key", sorted(CONFIG_KEYS))
def test_config_value_reaches_init_script_as_one_literal_argument(key, payload, sandbox, tmp_path_factory):
    values, expected = CONFIG_KEYS[key]
    values_file = tmp_path_factory.mktemp("values") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values(payload)))
    try:
        config = load_config(files=(str(values_file),), env=ENV)
    except ConfigError as exc:  # refusing the value is safe too, if the key is named
        assert any(line.startswith(key) for line in exc.problems), exc.problems
        return
    _, script = injected_script(pod(), config)
    check_syntax(script)
    tokens = shlex_tokens(script)
    calls = sandbox.run(script)
    for prefix, element in expected(payload):
        flag, _, value = element.partition("=")
        assert f"{flag}={shlex_form(value)}" in tokens
        assert_argv_element(calls, prefix, element)


# ---------------------------------------------------------------------------------------------
# Every annotation, every payload: denied with a 400 naming it, or injected with a harmless script

SWEEP_KEYS = [spec for spec in TABLE if spec.parse is not None and spec.key not in ("connect-inject",)]


@pytest.mark.parametrize("spec", SWEEP_KEYS, ids=lambda s: s.key)
def test_every_annotation_with_hostile_text_is_denied_or_harmless(spec):
    config = load_config(*EVERYTHING, env=ENV)
    key = spec.full + ("x" if spec.key == "service-meta-" else "")
    for payload in PAYLOADS:
        for value in (payload, f"db:1234:{payload}" if spec.kind == "upstream list" else f"80,{payload}"):
            p = pod({key: value})
            result = review_pod(p, config)
            response = result.review["response"]
            assert result.outcome in ("injected", "denied"), response
            if result.outcome == "denied":
                assert response["status"]["code"] == 400 and key in response["status"]["message"], response
                continue
            injected = patched(p, result)
            script = init_script(injected)
            check_syntax(script)
            with tempfile.TemporaryDirectory() as root:
                calls = Sandbox(Path(root)).run(script)
            assert ["consul-k8s-control-plane", "connect-init"] in [c[:2] for c in calls], calls
            copy_bin = container(injected, "copy-consul-bin", "initContainers")
            assert copy_bin["command"] == ["/bin/sh", "-ec", f"cp /bin/consul {MOUNT}/consul"]
            for c in injected["spec"]["containers"]:
                if c["name"] in ("envoy-sidecar", "consul-sidecar"):
                    assert c["command"][0] not in ("sh", "/bin/sh", "bash"), c["command"]


@pytest.mark.parametrize("key", ["transparent-proxy-exclude-inbound-ports", "transparent-proxy-exclude-outbound-ports",
                                 "transparent-proxy-exclude-outbound-cidrs", "transparent-proxy-exclude-uids",
                                 "connect-service-port", "connect-service-upstreams", "merged-metrics-port",
                                 "prometheus-scrape-port", "service-metrics-port"])
@pytest.mark.parametrize("payload", [p for p in PAYLOADS if p.strip() and p != "-bootstrap"], ids=lambda p: repr(p)[:24])
def test_validated_annotations_refuse_shell_text(key, payload):
    # Metrics merging on: v0.37 never read merged-metrics-port with it off (only a warning then).
    merging = ("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    result = review_pod(pod({P + key: payload}), load_config(*merging, env=ENV))
    response = result.review["response"]
    assert result.outcome == "denied", response
    assert response["status"]["code"] == 400 and f'"{P}{key}"' in response["status"]["message"]


def test_exclusion_lists_are_trimmed_and_quoted(sandbox):
    annotations = {P + "transparent-proxy-exclude-inbound-ports": " 8080 , 9090",
                   P + "transparent-proxy-exclude-outbound-ports": "443",
                   P + "transparent-proxy-exclude-outbound-cidrs": " 10.0.0.0/8, fd00::/8 ",
                   P + "transparent-proxy-exclude-uids": "0, 1001"}
    _, script = injected_script(pod(annotations), load_config(env=ENV))
    check_syntax(script)
    argv = call(sandbox.run(script), "consul", "connect", "redirect-traffic")
    assert [a for a in argv if a.startswith("-exclude-")] == [
        "-exclude-inbound-port=8080", "-exclude-inbound-port=9090", "-exclude-outbound-port=443",
        "-exclude-outbound-cidr=10.0.0.0/8", "-exclude-outbound-cidr=fd00::/8", "-exclude-uid=0", "-exclude-uid=1001"]
    assert '-exclude-outbound-cidr="10.0.0.0/8"' in script


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
def test_envoy_extra_args_are_plain_argv_of_envoy(payload):
    p = pod({P + "envoy-extra-args": f"--log-level debug {payload}"})
    result = review_pod(p, load_config())
    try:
        tokens = shlex.split(f"--log-level debug {payload}")
    except ValueError:
        assert result.outcome == "denied" and P + "envoy-extra-args" in result.review["response"]["status"]["message"]
        return
    envoy = container(patched(p, result), "envoy-sidecar")
    assert envoy["command"] == ["envoy", "--config-path", f"{MOUNT}/envoy-bootstrap.yaml", *tokens]
    assert "args" not in envoy


@pytest.mark.parametrize("payload", PAYLOADS, ids=IDS)
def test_service_metrics_path_is_one_argv_element_of_consul_sidecar(payload):
    sets = ("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    p = pod({P + "service-metrics-path": payload})
    sidecar = container(patched(p, review_pod(p, load_config(*sets))), "consul-sidecar")
    assert sidecar["command"][:2] == ["consul-k8s-control-plane", "consul-sidecar"]
    assert f"-service-metrics-path={payload or '/metrics'}" in sidecar["command"]


# ---------------------------------------------------------------------------------------------
# Arbitrary text (hypothesis)

_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=60)
_QUICK = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@settings(_QUICK, max_examples=200)
@given(value=_TEXT)
def test_shell_quote_round_trips_through_sh(value):
    proc = subprocess.run(["/bin/sh", "-c", "printf %s " + shell_quote(value)], capture_output=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == value.encode()


@settings(_QUICK, max_examples=60)
@given(service=_TEXT, account=_TEXT)
def test_any_service_name_and_account_reach_connect_init_unchanged(service, account):
    _, script = injected_script(pod({P + "connect-service": service}, serviceAccountName=account), load_config(*ACLS))
    with tempfile.TemporaryDirectory() as root:
        argv = call(Sandbox(Path(root)).run(script), "consul-k8s-control-plane", "connect-init")
    assert "-service-name=" + service in argv and "-service-account-name=" + account in argv


# Characters JSON leaves raw but YAML rejects (DEL, C1) or folds (NEL, U+2028, U+2029): the rendered
# container once lost them (a 500, or NEL turned into a space).
@pytest.mark.parametrize("service", ["a\x7fb", "a\x9bb", "a\x1bb", "a\ufffeb", "a\u200bb", "a\x85b", "a\u2028  b", "a\u2029  b"],
                         ids=["DEL", "CSI", "ESC", "U+FFFE", "ZWSP", "NEL", "LS", "PS"])
def test_control_characters_reach_connect_init_unchanged(service, sandbox):
    _, script = injected_script(pod({P + "connect-service": service}), load_config(*ACLS))
    assert_argv_element(sandbox.run(script), ("consul-k8s-control-plane", "connect-init"), "-service-name=" + service)


@pytest.mark.parametrize("unquoted", ['$(touch "$PWNED")', '`touch pwned`', 'x; touch "$PWNED"', "a b"])
def test_sandbox_notices_a_value_the_shell_did_interpret(unquoted, sandbox):
    """The harness itself: the same value written without shell_quote is caught."""
    script = f"consul-k8s-control-plane connect-init -service-name={unquoted}\n"
    with pytest.raises(AssertionError):
        assert_argv_element(sandbox.run(script), ("consul-k8s-control-plane", "connect-init"), "-service-name=" + unquoted)
