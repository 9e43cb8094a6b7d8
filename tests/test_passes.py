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
    from neurodeploy.lower.loihi2 import lower_graph

    net, _ = lower_graph(tiny_graph)
    assert net.metadata["passes"] == ["lower_nir", "graded_attention", "split_fan_in", "balance_delays"]
    proc, _ = lower_graph(tiny_graph, attention="process")
    assert proc.metadata["passes"] == ["lower_nir", "split_fan_in", "balance_delays"]
    # the same pass applied by name (then balanced) gives the same network
    again = run_passes(proc, ["graded_attention", "balance_delays"])
    assert again.metadata["passes"][-2:] == ["graded_attention", "balance_delays"]
    assert [p.name for p in again.populations] == [p.name for p in net.populations]
    assert [(s.name, s.balance_delay) for s in again.synapses] == [(s.name, s.balance_delay) for s in net.synapses]
    assert again.metadata["latency"] == net.metadata["latency"]
    assert again.metadata["attention_latency_added"] == net.metadata["attention_latency_added"] > 0
    chained = run_passes(net, ["chain_samples"])
    assert chained.metadata["passes"][-1] == "chain_samples" and chained.metadata["chain"]["period"] > 0
    assert set(PASSES) == {"balance_delays", "graded_attention", "split_fan_in", "split_channels", "chain_samples"}


def test_balancing_is_one_step_of_the_flow(tiny_graph, monkeypatch):
    """The rewriting passes leave balancing to the ``balance_delays`` step: one balancing per lowering, last,
    on a network that needs it (the graded attention adds latency, the residual paths wait for it)."""
    from neurodeploy.lower import attention_graded, balance, fan_in, passes
    from neurodeploy.lower.loihi2 import lower_graph

    calls = []
    real = balance.balance_network

    def counted(net, T=None):
        calls.append(net.metadata["passes"][-1])
        return real(net, T)
    for mod in (passes, attention_graded, fan_in):
        monkeypatch.setattr(mod, "balance_network", counted)
    net, _ = lower_graph(tiny_graph, T=4)
    assert calls == ["split_fan_in"]                # called once, after the last rewrite (then recorded)
    assert net.metadata["passes"][-1] == "balance_delays"
    assert any(s.balance_delay > 0 for s in net.synapses)
    net.latency()                                   # raises unless every path into a population agrees


def test_unknown_pass_is_refused(tiny_graph):
    from neurodeploy.lower.loihi2 import lower_graph

    net, _ = lower_graph(tiny_graph, attention="process")
    with pytest.raises(BadInputError, match="unknown lowering pass 'fold'"):
        run_passes(net, ["fold"])
