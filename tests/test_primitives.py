"""One primitive table: every stage that walks a graph refuses a node type it does not know, by name."""
from __future__ import annotations

from dataclasses import dataclass

import nir
import numpy as np
import pytest

from neurodeploy.errors import UnsupportedError
from neurodeploy.graph.primitives import KINDS, SPIKING_NEURONS, classes, kind_of, require_kinds


@dataclass(eq=False)
class Mystery(nir.NIRNode):
    """A node type no NIR version defines."""

    weight: np.ndarray

    def __post_init__(self):
        self.input_type = {"input": np.array(self.weight.shape[1:])}
        self.output_type = {"output": np.array(self.weight.shape[:1])}
        self.metadata = {}


def _graph(mid, n_in=4):
    return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([n_in])), "odd": mid,
                               "lif": nir.LIF(tau=np.full(3, 2e-4), r=np.ones(3), v_leak=np.zeros(3),
                                              v_threshold=np.ones(3), v_reset=np.zeros(3)),
                               "output": nir.Output(output_type=np.array([3]))},
                        edges=[("input", "odd"), ("odd", "lif"), ("lif", "output")],
                        metadata={"neurodeploy.time_steps": 4})


def test_every_nir_primitive_has_a_kind():
    import inspect

    prims = {c for _, c in inspect.getmembers(nir, inspect.isclass) if issubclass(c, nir.NIRNode) and c is not nir.NIRNode}
    assert prims == set(KINDS)
    assert set(SPIKING_NEURONS) == {nir.LIF, nir.IF, nir.CubaLIF} and nir.Threshold in classes("spiking")


def test_unknown_node_is_refused_by_every_stage():
    from neurodeploy.energy import ops_from_graph
    from neurodeploy.mapping import from_graph

    g = _graph(Mystery(weight=np.ones((3, 4))))
    with pytest.raises(UnsupportedError, match="node 'odd': NIR type Mystery"):
        kind_of(g.nodes["odd"], "odd")
    for stage in (ops_from_graph, from_graph, lambda gr: require_kinds(gr, "test")):
        with pytest.raises(UnsupportedError, match="'odd'"):
            stage(g)


def test_known_node_a_stage_cannot_handle_is_named():
    from neurodeploy.mapping import from_graph

    g = _graph(nir.Delay(delay=np.full(3, 1e-4)), n_in=3)
    with pytest.raises(UnsupportedError, match="node 'odd'.*chip-fit mapping.*Delay"):
        from_graph(g)
