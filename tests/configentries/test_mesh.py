"""Mesh: ported from mesh_types_test.go (ToConsul, MatchesConsul): the entry has no Name."""

from __future__ import annotations

import pytest

from generator import configentries as ce
from generator.configentries.gofmt import marshal

from .helpers import DC_META, message, resource

KIND = ce.KINDS["Mesh"]


def test_to_consul():
    assert ce.to_consul(KIND, resource("Mesh", "mesh", {}), "datacenter") == {
        "Kind": "mesh", "TransparentProxy": {"MeshDestinationsOnly": False}, "Meta": DC_META,
        "CreateIndex": 0, "ModifyIndex": 0}
    entry = ce.to_consul(KIND, resource("Mesh", "mesh", {"transparentProxy": {"meshDestinationsOnly": True}}), "dc1")
    assert marshal(entry) == ('{"Kind":"mesh","TransparentProxy":{"MeshDestinationsOnly":true},"Meta":'
                              '{"consul.hashicorp.com/source-datacenter":"dc1","external-source":"kubernetes"},'
                              '"CreateIndex":0,"ModifyIndex":0}')


STORED = {"Kind": "mesh", "Namespace": "default", "CreateIndex": 1, "ModifyIndex": 2, "Meta": DC_META}
MATCHES = {
    "empty fields matches": ({}, STORED, True),
    "all fields populated matches": ({"transparentProxy": {"meshDestinationsOnly": True}},
                                     {**STORED, "TransparentProxy": {"MeshDestinationsOnly": True}}, True),
    "a different value does not match": ({"transparentProxy": {"meshDestinationsOnly": True}}, STORED, False),
    "mismatched types does not match": ({}, {**STORED, "Kind": "proxy-defaults"}, False),
    "Consul's Name is not compared": ({}, {**STORED, "Name": "mesh"}, True),
}


@pytest.mark.parametrize("spec,entry,matches", MATCHES.values(), ids=MATCHES.keys())
def test_matches_consul(spec, entry, matches):
    assert ce.matches_consul(KIND, resource("Mesh", "mesh", spec), entry) is matches


def test_no_spec_rules_and_fixed_name():
    assert message(resource("Mesh", "anything", {"transparentProxy": {"meshDestinationsOnly": True}})) == ""
    assert KIND.fixed_name == "mesh" and KIND.global_resource and KIND.plural == "meshes"
