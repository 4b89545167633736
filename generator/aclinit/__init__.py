"""`connect-inject acl-init`: the ACL bootstrap for our components beside the Consul chart.

When the Consul release runs with `connectInject.enabled=false` / `controller.enabled=false`, its
`server-acl-init` no longer creates what our injector, endpoints controller and config-entry
controller need (install-beside-consul.md §0, §1.3-1.5). This package creates or updates, with the
Consul release's management token, exactly those objects under the reference's names and with its
bodies, so that either job can run after the other without a fight:

- `settings`: what the values say (names, namespaces, partitions, selector) and where the token is;
- `rules`: the policies' rules, byte for byte as the reference renders them;
- `kube`: the few Kubernetes reads and writes (ServiceAccount, Secrets), typed errors;
- `run`: the steps, each comparing before it writes, with retries in a bounded time.

Layering (tests/test_imports.py): base, values, kube and consul only.
"""
