"""PartitionExports: ported from partitionexports_types_test.go and the Validate half of
partitionexports_webhook_test.go (forbidden without partitions, name, services, consumers)."""

from __future__ import annotations

import pytest

from generator import configentries as ce

from .helpers import DC_META, message, resource

KIND = ce.KINDS["PartitionExports"]
SPEC = {"services": [
    {"name": "frontend", "namespace": "frontend", "consumers": [{"partition": "second"}, {"partition": "third"}]},
    {"name": "backend", "namespace": "backend", "consumers": [{"partition": "fourth"}, {"partition": "fifth"}]}]}
CONSUL = {"Services": [
    {"Name": "frontend", "Namespace": "frontend", "Consumers": [{"Partition": "second"}, {"Partition": "third"}]},
    {"Name": "backend", "Namespace": "backend", "Consumers": [{"Partition": "fourth"}, {"Partition": "fifth"}]}]}


def test_to_consul():
    assert ce.to_consul(KIND, resource("PartitionExports", "name", SPEC), "datacenter") == {
        "Kind": "partition-exports", "Name": "name", **CONSUL, "Meta": DC_META, "CreateIndex": 0, "ModifyIndex": 0}
    # No omitempty on the Go type's slices: empty ones are sent as null.
    assert ce.to_consul(KIND, resource("PartitionExports", "name", {"services": [{"name": "a"}]}), "dc")[
        "Services"] == [{"Name": "a", "Consumers": None}]
    assert ce.to_consul(KIND, resource("PartitionExports", "name", {}), "dc")["Services"] is None


@pytest.mark.parametrize("entry,matches", [
    ({"Kind": "partition-exports", "Name": "name", "Partition": "default", "Meta": DC_META, **CONSUL}, True),
    ({"Kind": "partition-exports", "Name": "name", "Services": CONSUL["Services"][:1]}, False),
    ({"Kind": "partition-exports", "Name": "other", **CONSUL}, False),
    ({"Kind": "service-defaults", "Name": "name", **CONSUL}, False),
])
def test_matches_consul(entry, matches):
    assert ce.matches_consul(KIND, resource("PartitionExports", "name", SPEC), entry) is matches


PARTITIONS = ce.ConsulMeta(partitions_enabled=True, partition="other")
VALIDATE = {
    "valid": ("other", SPEC, PARTITIONS, ""),
    "name is not the partition": ("local", SPEC, PARTITIONS,
                                  'partitionexports.consul.hashicorp.com "local" is invalid: name: Invalid value: '
                                  '"local": partitionexports resource name must be the same name as the partition, '
                                  '"other"'),
    "partitions disabled": ("other", SPEC, ce.ConsulMeta(),
                            'partitionexports.consul.hashicorp.com "other" is forbidden: Consul Enterprise Admin '
                            "Partitions must be enabled to create PartitionExports"),
    "no services": ("other", {}, PARTITIONS,
                    'partitionexports.consul.hashicorp.com "other" is invalid: spec.services: Invalid value: '
                    "[]v1alpha1.ExportedService(nil): at least one service must be exported"),
    "no consumers": ("other", {"services": [{"name": "service", "namespace": "service"}]}, PARTITIONS,
                     'partitionexports.consul.hashicorp.com "other" is invalid: spec.services[0]: Invalid value: '
                     "[]v1alpha1.ServiceConsumer(nil): service must have at least 1 consumer."),
    "an empty list, not an absent one": ("other", {"services": []}, PARTITIONS,
                                         'partitionexports.consul.hashicorp.com "other" is invalid: spec.services: '
                                         "Invalid value: []v1alpha1.ExportedService{}: at least one service must be "
                                         "exported"),
}


@pytest.mark.parametrize("name,spec,meta,expected", VALIDATE.values(), ids=VALIDATE.keys())
def test_validate(name, spec, meta, expected):
    assert message(resource("PartitionExports", name, spec), meta) == expected


def test_forbidden_is_its_own_reason():
    with pytest.raises(ce.ConfigEntryInvalid) as err:
        ce.validate(KIND, resource("PartitionExports", "p", SPEC), ce.ConsulMeta())
    assert err.value.reason == "Forbidden"
    assert err.value.problems == ["Consul Enterprise Admin Partitions must be enabled to create PartitionExports"]


def test_always_in_the_default_consul_namespace():
    res = resource("PartitionExports", "p", SPEC, namespace="kube")
    assert ce.consul_namespace(KIND, res, ce.ConsulMeta()) == "default"
