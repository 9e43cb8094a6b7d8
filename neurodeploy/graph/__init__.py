"""NIR helpers: the attention extension, atomic read/write, topological order, reference simulator."""
from .attention import EXTENSION, EXTENSION_VERSION, AttentionSpec, attention_forward, attention_spec, make_attention_node
from .core import (DT_DEFAULT, FORMAT_VERSION, graph_dt, input_names, meta, node_shape, order_and_back_edges, output_names,
                   predecessors, successors, topological_order)
from .io import read_graph, write_graph
from .simulate import SUPPORTED_TYPES, reduce_output, simulate, steps_per_tau

__all__ = [
    "EXTENSION", "EXTENSION_VERSION", "AttentionSpec", "attention_forward", "attention_spec", "make_attention_node",
    "DT_DEFAULT", "FORMAT_VERSION", "graph_dt", "input_names", "meta", "node_shape", "order_and_back_edges",
    "output_names", "predecessors", "successors", "topological_order", "read_graph", "write_graph",
    "SUPPORTED_TYPES", "reduce_output", "simulate", "steps_per_tau",
]
