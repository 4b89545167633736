"""ACL rules of the policies `acl-init` writes, exactly as the reference renders them.

The reference (consul-k8s v0.37.0 `server-acl-init/rules.go`) renders Go templates; the text
matters beyond its meaning: both its job and ours may write the same policy, and a difference of
one space would make each run "update" what the other wrote. These functions build the same
strings (leading newline included) and tests/aclinit/test_rules.py holds the reference's
expected outputs (`rules_test.go`).
"""

from __future__ import annotations


def inject_rules(namespaces: bool, partition: str = "") -> str:
    """`connect-inject-token`: registrations on any node, and `acl = "write"` because the
    endpoints controller deletes the login tokens of pods that are gone."""
    if partition:
        text = f'\npartition "{partition}" {{'
    elif namespaces:
        text = '\n  operator = "write"'
    else:
        text = ""
    text += '\n  node_prefix "" {\n    policy = "write"\n  }'
    if namespaces:
        text += '\n  namespace_prefix "" {'
    if partition:
        text += '\n    policy = "write"'
    text += '\n    acl = "write"\n    service_prefix "" {\n      policy = "write"\n    }'
    if namespaces:
        text += "\n  }"
    if partition:
        text += "\n}"
    return text


def controller_rules(namespaces: bool, destination: str, mirroring: bool, prefix: str, partition: str = "") -> str:
    """`controller-token`: config entries (operator or mesh) and intentions, in the Consul
    namespaces injected services use."""
    if partition:
        text = f'\npartition "{partition}" {{\n  mesh = "write"\n  acl = "write"'
    else:
        text = '\n  operator = "write"\n  acl = "write"'
    if namespaces:
        text += f'\n  namespace_prefix "{prefix}" {{' if mirroring else f'\n  namespace "{destination}" {{'
    if partition:
        text += '\n    policy = "write"'
    text += '\n    service_prefix "" {\n      policy = "write"\n      intentions = "write"\n    }'
    if namespaces:
        text += "\n  }"
    if partition:
        text += "\n}"
    return text


def cross_namespace_rules(partition: str = "") -> str:
    """`cross-namespace-policy`: read on services and nodes of every namespace, the default
    policy of every namespace consul-k8s creates (cross-namespace service discovery)."""
    text = f'\npartition "{partition}" {{' if partition else ""
    text += ('\n  namespace_prefix "" {\n    service_prefix "" {\n      policy = "read"\n    }'
             '\n    node_prefix "" {\n      policy = "read"\n    }\n  }')
    if partition:
        text += "\n}"
    return text


def anonymous_rules(namespaces: bool, partitions: bool) -> str:
    """`anonymous-token-policy` (reference anonymousTokenRules, as its trimmed template renders):
    read on every node and service, so that cross-datacenter requests, which arrive without the
    pod's local token, can still discover services."""
    text = '\npartition_prefix "" {' if partitions else ""
    if namespaces:
        text += '\n  namespace_prefix "" {'
    text += '\n    node_prefix "" {\n       policy = "read"\n    }\n    service_prefix "" {\n       policy = "read"\n    }'
    if namespaces:
        text += "\n  }"
    if partitions:
        text += "\n}"
    return text
