"""Lowering passes are named and recorded in order in the network's metadata (and in the artifact)."""
from __future__ import annotations

import pytest

from neurodeploy.errors import BadInputError
from neurodeploy.lower.passes import PASSES, run_pass, run_passes


@pytest.fixture(scope="module")
def tiny_graph():
    from neurodeploy.exporters import to_nir
    from testmodels import tiny_spikingformer

    return to_nir(tiny_spikingformer(), arch="spikingformer-digits")


def test_lowering_records_its_passes(tiny_graph):
    from neurodeploy.lower.from_nir import lower_graph

    net, _ = lower_graph(tiny_graph)
    assert net.metadata["passes"] == ["lower_nir", "balance_delays", "graded_attention"]
    proc, _ = lower_graph(tiny_graph, attention="process")
    assert proc.metadata["passes"] == ["lower_nir", "balance_delays"]
    # the same pass applied by name gives the same network
    again = run_pass(proc, "graded_attention")
    assert again.metadata["passes"] == net.metadata["passes"]
    assert [p.name for p in again.populations] == [p.name for p in net.populations]
    assert again.metadata["latency"] == net.metadata["latency"]
    chained = run_passes(net, ["chain_samples"])
    assert chained.metadata["passes"][-1] == "chain_samples" and chained.metadata["chain"]["period"] > 0
    assert set(PASSES) == {"balance_delays", "graded_attention", "split_fan_in", "chain_samples"}


def test_unknown_pass_is_refused(tiny_graph):
    from neurodeploy.lower.from_nir import lower_graph

    net, _ = lower_graph(tiny_graph, attention="process")
    with pytest.raises(BadInputError, match="unknown lowering pass 'fold'"):
        run_passes(net, ["fold"])
