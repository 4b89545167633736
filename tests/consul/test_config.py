"""Consul settings from the environment (design.md, "Controllers"): CONSUL_HTTP_ADDR with its
scheme and port reused for every agent, the token from a value or a file, TLS files. Pure: no
server."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.consul import ConsulAddress, ConsulConfig, ConsulConfigError, TokenSource
from generator.tools.devcerts import CA


@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:8500", ("http", "127.0.0.1", 8500, "")),
    ("http://10.0.0.7:8500", ("http", "10.0.0.7", 8500, "")),
    ("https://10.0.0.7:8501", ("https", "10.0.0.7", 8501, "")),
    ("HTTPS://consul.example:8501", ("https", "consul.example", 8501, "")),
    ("  http://10.0.0.7:8500  ", ("http", "10.0.0.7", 8500, "")),
    ("https://[fd00::7]:8501", ("https", "fd00::7", 8501, "")),
    ("http://10.0.0.7:8500/consul/", ("http", "10.0.0.7", 8500, "/consul")),
])
def test_address_parsing(text: str, expected: tuple[str, str, int, str]):
    address = ConsulAddress.parse(text)
    assert (address.scheme, address.host, address.port, address.path_prefix) == expected


@pytest.mark.parametrize("text, message", [
    ("10.0.0.7", "has no port"),
    ("http://10.0.0.7", "has no port"),
    ("http://10.0.0.7:", "expected host:port"),
    ("http://:8500", "expected host:port"),
    ("http://10.0.0.7:http", "is not a number"),
    ("http://10.0.0.7:70000", "out of range"),
    ("unix:///var/run/consul.sock", "unsupported scheme"),
    ("fd00::7:8500", "IPv6 host in brackets"),
    ("[fd00::7]", "has no port"),
    ("", "empty"),
])
def test_bad_addresses_are_refused_at_startup(text: str, message: str):
    with pytest.raises(ConsulConfigError, match=message):
        ConsulAddress.parse(text)


def test_agents_share_the_scheme_port_and_prefix():
    base = ConsulAddress.parse("https://10.0.0.7:8501")
    assert str(base.with_host("10.1.2.3")) == "https://10.1.2.3:8501"
    assert str(base.with_host("fd00::9")) == "https://[fd00::9]:8501"
    assert str(base.with_host("[fd00::9]")) == "https://[fd00::9]:8501"
    with pytest.raises(ConsulConfigError):
        base.with_host("")  # an agent pod without an IP yet


def test_defaults_and_consul_http_ssl():
    assert str(ConsulConfig.from_env({}).address) == "http://127.0.0.1:8500"
    assert ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "10.0.0.7:8501", "CONSUL_HTTP_SSL": "true"}).address.scheme == "https"
    # an explicit scheme wins, as in the Go client
    assert ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "http://10.0.0.7:8500", "CONSUL_HTTP_SSL": "1"}).address.scheme == "http"
    with pytest.raises(ConsulConfigError, match="CONSUL_HTTP_SSL"):
        ConsulConfig.from_env({"CONSUL_HTTP_SSL": "maybe"})


def test_overrides_replace_fields():
    config = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "10.0.0.7:8500"}, timeout=1.5, partition="p1")
    assert (config.timeout, config.partition, config.address.host) == (1.5, "p1", "10.0.0.7")


def test_token_value_file_precedence(tmp_path: Path):
    assert TokenSource("  abc\n").get() == "abc"
    assert TokenSource().get() == ""
    path = tmp_path / "token"
    path.write_text("from-file\n")
    source = TokenSource("from-env", str(path))
    assert source.get() == "from-file"
    path.unlink()
    assert source.get() == "from-file"  # a vanished file keeps the last token (secret symlink swap)
    assert "from-file" not in repr(source) and "from-env" not in repr(source)


def test_missing_token_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConsulConfigError, match="token file"):
        ConsulConfig.from_env({"CONSUL_HTTP_TOKEN_FILE": str(tmp_path / "absent")})


def test_tls_files(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(CA().cert_pem)
    config = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "https://10.0.0.7:8501", "CONSUL_CACERT": str(ca),
                                    "CONSUL_TLS_SERVER_NAME": "client.dc1.consul"})
    assert config.tls.ca_file == str(ca) and config.tls.server_name == "client.dc1.consul"
    assert config.tls.context().verify_mode.name == "CERT_REQUIRED"
    bad = ConsulConfig.from_env({"CONSUL_HTTP_ADDR": "https://10.0.0.7:8501", "CONSUL_CACERT": str(tmp_path / "no")})
    with pytest.raises(ConsulConfigError, match="TLS"):
        bad.tls.context()
    insecure = ConsulConfig.from_env({"CONSUL_HTTP_SSL_VERIFY": "false"})
    assert insecure.tls.context().check_hostname is False
