"""The init script is the compatibility surface with connect-init and the Consul CLI: it must match
consul-k8s v0.37 line for line (reference §5.4) for the same inputs, except for one deliberate
difference: the Envoy bootstrap is written to a temporary file and renamed into place (`ours()`)."""

from __future__ import annotations

import subprocess

from engine_helpers import P, init_script, inject, load_config, make_pod

SA_MOUNT = {"name": "kube-api-access-x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}

REFERENCE_DEFAULT = """
export CONSUL_HTTP_ADDR="${HOST_IP}:8500"
export CONSUL_GRPC_ADDR="${HOST_IP}:8502"
consul-k8s-control-plane connect-init -pod-name=${POD_NAME} -pod-namespace=${POD_NAMESPACE} \\

# Generate the envoy bootstrap code
/consul/connect-inject/consul connect envoy \\
  -proxy-id="$(cat /consul/connect-inject/proxyid)" \\
  -bootstrap > /consul/connect-inject/envoy-bootstrap.yaml"""

REFERENCE_MAXIMAL = """
export CONSUL_HTTP_ADDR="${HOST_IP}:8500"
export CONSUL_GRPC_ADDR="${HOST_IP}:8502"
consul-k8s-control-plane connect-init -pod-name=${POD_NAME} -pod-namespace=${POD_NAMESPACE} \\
  -acl-auth-method="auth-method" \\
  -service-account-name="web" \\
  -service-name="web" \\
  -auth-method-namespace="default" \\
  -partition="non-default" \\
  -consul-service-namespace="k8snamespace" \\

# Generate the envoy bootstrap code
/consul/connect-inject/consul connect envoy \\
  -proxy-id="$(cat /consul/connect-inject/proxyid)" \\
  -token-file="/consul/connect-inject/acl-token" \\
  -partition="non-default" \\
  -namespace="k8snamespace" \\
  -bootstrap > /consul/connect-inject/envoy-bootstrap.yaml

# Apply traffic redirection rules.
/consul/connect-inject/consul connect redirect-traffic \\
  -token-file="/consul/connect-inject/acl-token" \\
  -partition="non-default" \\
  -namespace="k8snamespace" \\
  -proxy-id="$(cat /consul/connect-inject/proxyid)" \\
  -proxy-uid=5995"""


BOOTSTRAP_REFERENCE = "  -bootstrap > /consul/connect-inject/envoy-bootstrap.yaml"
BOOTSTRAP_OURS = (
    '  -bootstrap > "${bootstrap}"\n'
    'chmod 0644 "${bootstrap}"\n'
    "rm -f /consul/connect-inject/envoy-bootstrap.yaml\n"
    'mv -f "${bootstrap}" /consul/connect-inject/envoy-bootstrap.yaml'
)


def ours(reference: str) -> str:
    """The reference script with the bootstrap written without following a planted symlink."""
    assert reference.count(BOOTSTRAP_REFERENCE) == 1
    reference = reference.replace(
        "# Generate the envoy bootstrap code\n",
        '# Generate the envoy bootstrap code\nbootstrap="$(mktemp /consul/connect-inject/envoy-bootstrap.yaml.XXXXXX)"\n')
    return reference.replace(BOOTSTRAP_REFERENCE, BOOTSTRAP_OURS)


def _web_pod(annotations: dict[str, str]) -> dict:
    containers = [{"name": "web", "image": "web", "ports": [{"name": "http", "containerPort": 8080}], "volumeMounts": [SA_MOUNT]}]
    return make_pod(annotations, containers=containers, serviceAccountName="web")


def test_default_script_matches_reference_exactly():
    pod = inject(make_pod({P + "transparent-proxy": "false"}))
    assert init_script(pod) == ours(REFERENCE_DEFAULT)


def test_maximal_script_matches_reference_exactly():
    config = load_config(
        "connectInject.overrideAuthMethodName=auth-method",
        "global.enableConsulNamespaces=true",
        "connectInject.consulNamespaces.mirroringK8S=true",
        "global.adminPartitions.enabled=true",
        "global.adminPartitions.name=non-default",
    )
    pod = inject(_web_pod({P + "connect-service": "web"}), config, namespace="k8snamespace")
    assert init_script(pod) == ours(REFERENCE_MAXIMAL)


def test_script_starts_with_newline_and_has_no_trailing_newline():
    script = init_script(inject(make_pod()))
    assert script.startswith("\nexport ") and script.endswith("-proxy-uid=5995")


def test_destination_namespace_without_mirroring_is_the_auth_method_namespace():
    config = load_config("global.acls.manageSystemACLs=true", "global.enableConsulNamespaces=true",
                         "connectInject.consulNamespaces.consulDestinationNamespace=payments")
    script = init_script(inject(_web_pod({}), config, namespace="k8s"))
    assert '  -acl-auth-method="consul-consul-k8s-auth-method" \\\n' in script
    assert '  -service-name="" \\\n' in script  # always emitted, even empty
    assert '  -auth-method-namespace="payments" \\\n' in script
    assert '  -consul-service-namespace="payments" \\\n' in script
    assert '  -namespace="payments" \\\n' in script


def test_mirroring_prefix_names_the_consul_namespace():
    config = load_config("global.enableConsulNamespaces=true", "connectInject.consulNamespaces.mirroringK8S=true",
                         "connectInject.consulNamespaces.mirroringK8SPrefix=k8s-")
    pod = inject(make_pod(), config, namespace="staging")
    assert '-consul-service-namespace="k8s-staging"' in init_script(pod)
    assert pod["metadata"]["annotations"][P + "consul-namespace"] == "k8s-staging"


def test_metrics_merging_adds_prometheus_flags_in_reference_order():
    config = load_config("connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    script = init_script(inject(make_pod({P + "merged-metrics-port": "20123", P + "prometheus-scrape-path": "/m"}), config))
    assert (
        '  -proxy-id="$(cat /consul/connect-inject/proxyid)" \\\n'
        '  -prometheus-scrape-path="/m" \\\n'
        '  -prometheus-backend-port="20123" \\\n'
        '  -bootstrap > "${bootstrap}"'
    ) in script


def test_exclusions_are_trimmed_and_in_reference_order():
    pod = make_pod({
        P + "transparent-proxy-exclude-inbound-ports": "9090, 9091",
        P + "transparent-proxy-exclude-outbound-ports": "5432",
        P + "transparent-proxy-exclude-outbound-cidrs": "10.0.0.0/8, fd00::/8",
        P + "transparent-proxy-exclude-uids": "1000,0",
        P + "consul-dns": "true",
    })
    config = load_config(env={"CONSUL_CONSUL_DNS_SERVICE_HOST": "10.96.0.10"})
    script = init_script(inject(pod, config))
    tail = script[script.index("redirect-traffic"):]
    assert tail == (
        'redirect-traffic \\\n'
        '  -consul-dns-ip="10.96.0.10" \\\n'
        '  -exclude-inbound-port="9090" \\\n'
        '  -exclude-inbound-port="9091" \\\n'
        '  -exclude-outbound-port="5432" \\\n'
        '  -exclude-outbound-cidr="10.0.0.0/8" \\\n'
        '  -exclude-outbound-cidr="fd00::/8" \\\n'
        '  -exclude-uid="1000" \\\n'
        '  -exclude-uid="0" \\\n'
        '  -proxy-id="$(cat /consul/connect-inject/proxyid)" \\\n'
        "  -proxy-uid=5995"
    )


def test_tls_embeds_the_consul_ca_and_uses_https(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import datetime

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "Consul CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    ca_file = tmp_path / "ca.pem"
    # Text around the certificate (comments, a line that would end the heredoc) never reaches the script.
    ca_file.write_text("# Consul CA\n" + pem + "EOF\ntouch /tmp/pwned\ncat <<EOF\n")
    config = load_config("global.tls.enabled=true", env={"CONSUL_CACERT": str(ca_file)})
    script = init_script(inject(make_pod({P + "transparent-proxy": "false"}), config))
    assert script.startswith(
        '\nexport CONSUL_HTTP_ADDR="https://${HOST_IP}:8501"\n'
        'export CONSUL_GRPC_ADDR="https://${HOST_IP}:8502"\n'
        "export CONSUL_CACERT=/consul/connect-inject/consul-ca.pem\n"
        "cat <<EOF >/consul/connect-inject/consul-ca.pem\n"
        f"{pem}\n"  # the certificate file's own final newline, then the reference's: a blank line
        "EOF\n"
        "consul-k8s-control-plane connect-init"
    )
    assert "pwned" not in script and "# Consul CA" not in script


def test_every_rendered_script_is_valid_sh():
    config = load_config("global.acls.manageSystemACLs=true", "global.enableConsulNamespaces=true",
                         "connectInject.metrics.defaultEnabled=true", "connectInject.metrics.defaultEnableMerging=true")
    script = init_script(inject(_web_pod({P + "transparent-proxy-exclude-uids": "7"}), config))
    subprocess.run(["sh", "-n", "-c", script], check=True)
