"""Manifests are read as Kubernetes reads them and written so that every reader agrees.

kubectl and Helm turn YAML into JSON with go-yaml v2 rules; PyYAML reads YAML 1.1; go-yaml v3 and
ruamel.yaml read YAML 1.2. Users write `value: 2021-11-15` unquoted and quote `"y"`; `inject` must
neither crash on the first nor write the second back in a form another reader turns into `true`.
"""

from __future__ import annotations

import io
import json
import math

import pytest
import yaml
from ruamel.yaml import YAML

from generator.base import yamlio

# Quoted in the input: strings every reader must get back as the same string.
AMBIGUOUS = ["y", "Y", "n", "N", "yes", "no", "on", "off", "true", "False", "~", "null", "", "1e3", "1E-3",
             "0X1F", "0B101", "0O17", "1e_", "0o_", "0x_", "99999999999999999999",
             "0o17", "017", "0x1F", "0b101", "1_000", "08", "1.", ".5", "+1", "-0", ".inf", "-.Inf", ".NaN",
             "2021-11-15", "2021-11-15T10:00:00Z", "23:59", "1:20:30", "=", "<<", "hello", "v1.18.4", "- x", "#x"]


def _readers():
    ruamel = YAML(typ="safe", pure=True)
    return {
        "yaml-1.1 (PyYAML)": lambda text: list(yaml.safe_load_all(text)),
        "go-yaml v2 (kubectl)": yamlio.load_all,
        "yaml-1.2 (ruamel.yaml)": lambda text: list(ruamel.load_all(io.StringIO(text))),
    }


@pytest.mark.parametrize("reader", sorted(_readers()))
def test_written_strings_read_back_as_the_same_strings_in_every_reader(reader):
    doc = {"env": [{"name": f"V{i}", "value": value} for i, value in enumerate(AMBIGUOUS)],
           "keys": {value: value for value in AMBIGUOUS}}
    text = yamlio.dump_stream([doc])
    (back,) = _readers()[reader](text)
    assert json.dumps(back, sort_keys=True) == json.dumps(doc, sort_keys=True)


def test_empty_values_are_null_and_odd_numbers_never_crash():
    """Reviewer's findings: `key:` with no value is null (as Helm reads it); `1e_` is a string to
    go-yaml v2 and must not raise; uppercase base prefixes are numbers to Go's ParseInt."""
    (doc,) = yamlio.load_all("a:\nb: 1e_\nc: 0o_\nd: ._\ne: 0X1F\nf: 0B101\ng: 99999999999999999999\n")
    assert doc == {"a": None, "b": "1e_", "c": "0o_", "d": "._", "e": 31, "f": 5, "g": 1e20}


def test_deep_nesting_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    values = tmp_path / "deep.yaml"
    values.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    proc = subprocess.run([sys.executable, "-m", "generator", "check-values", "--values", str(values)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and "not valid YAML" in proc.stderr


def test_unquoted_scalars_are_read_as_kubectl_reads_them():
    (doc,) = yamlio.load_all(
        "date: 2021-11-15\ntime: 23:59\nstamp: 2021-11-15T10:00:00Z\nexp: 1e3\noctal: 0o17\nold_octal: 017\n"
        "yes_: y\nno_: off\nnum: 1_000\nhex: 0x1F\nnull_: ~\ninf: -.inf\n")
    assert doc["date"] == "2021-11-15" and doc["time"] == "23:59" and doc["stamp"] == "2021-11-15T10:00:00Z"
    assert doc["exp"] == 1000.0 and doc["octal"] == 15 and doc["old_octal"] == 15 and doc["hex"] == 31
    assert doc["yes_"] is True and doc["no_"] is False and doc["num"] == 1000 and doc["null_"] is None
    assert math.isinf(doc["inf"]) and doc["inf"] < 0


def test_inject_reads_an_unquoted_date_and_writes_it_back_quoted(tmp_path):
    """`value: 2021-11-15` once gave a traceback ("internal error")."""
    import subprocess
    import sys

    manifest = tmp_path / "job.yaml"
    manifest.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations: {consul.hashicorp.com/connect-inject: 'true'}\n"
        "spec:\n  containers:\n  - name: web\n    image: w\n    env:\n    - {name: SINCE, value: 2021-11-15}\n"
        "    - {name: AT, value: 23:59}\n    - {name: FLAG, value: \"y\"}\n    - {name: NUM, value: \"1e3\"}\n")
    proc = subprocess.run([sys.executable, "-m", "generator", "inject", "-f", str(manifest)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "value: '2021-11-15'" in proc.stdout
    for reader in _readers().values():
        (pod,) = reader(proc.stdout)
        env = {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}
        assert env == {"SINCE": "2021-11-15", "AT": "23:59", "FLAG": "y", "NUM": "1e3"}
