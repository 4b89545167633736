"""Tests of generator/kube: the controller runtime pieces (work queue, leader election) and the fakes they run against."""
