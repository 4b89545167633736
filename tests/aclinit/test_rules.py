"""The policies' rules are the reference's text exactly (expected strings of consul-k8s v0.37.0
`server-acl-init/rules_test.go`): both its job and ours write these policies, and any byte of
difference would make each run rewrite what the other wrote."""

from __future__ import annotations

import pytest

from generator.aclinit import rules

INJECT_OSS = '''
  node_prefix "" {
    policy = "write"
  }
    acl = "write"
    service_prefix "" {
      policy = "write"
    }'''
INJECT_NS = '''
  operator = "write"
  node_prefix "" {
    policy = "write"
  }
  namespace_prefix "" {
    acl = "write"
    service_prefix "" {
      policy = "write"
    }
  }'''
INJECT_PARTITION = '''
partition "part-1" {
  node_prefix "" {
    policy = "write"
  }
  namespace_prefix "" {
    policy = "write"
    acl = "write"
    service_prefix "" {
      policy = "write"
    }
  }
}'''


@pytest.mark.parametrize(("namespaces", "partition", "expected"), [
    (False, "", INJECT_OSS), (True, "", INJECT_NS), (True, "part-1", INJECT_PARTITION)])
def test_inject_rules_are_the_references(namespaces: bool, partition: str, expected: str) -> None:
    assert rules.inject_rules(namespaces, partition) == expected


CONTROLLER = {
    "oss": ((False, "", False, "", ""), '''
  operator = "write"
  acl = "write"
    service_prefix "" {
      policy = "write"
      intentions = "write"
    }'''),
    "destination": ((True, "consul", False, "", ""), '''
  operator = "write"
  acl = "write"
  namespace "consul" {
    service_prefix "" {
      policy = "write"
      intentions = "write"
    }
  }'''),
    "mirroring-prefix": ((True, "", True, "prefix-", ""), '''
  operator = "write"
  acl = "write"
  namespace_prefix "prefix-" {
    service_prefix "" {
      policy = "write"
      intentions = "write"
    }
  }'''),
    "partition-mirroring": ((True, "", True, "", "part-1"), '''
partition "part-1" {
  mesh = "write"
  acl = "write"
  namespace_prefix "" {
    policy = "write"
    service_prefix "" {
      policy = "write"
      intentions = "write"
    }
  }
}'''),
}


@pytest.mark.parametrize("case", sorted(CONTROLLER))
def test_controller_rules_are_the_references(case: str) -> None:
    (namespaces, destination, mirroring, prefix, partition), expected = CONTROLLER[case]
    assert rules.controller_rules(namespaces, destination, mirroring, prefix, partition) == expected


def test_cross_namespace_rules_render_the_references_template() -> None:
    """rules.go crossNamespaceRules, rendered by Go's text/template (`{{-` trims before it)."""
    body = ('\n  namespace_prefix "" {\n    service_prefix "" {\n      policy = "read"\n    }\n'
            '    node_prefix "" {\n      policy = "read"\n    }\n  }')
    assert rules.cross_namespace_rules() == body
    assert rules.cross_namespace_rules("p1") == '\npartition "p1" {' + body + "\n}"
