"""The network description the mapper reads: populations and synapse groups, hardware-neutral.

Adapters build it from the lowering's :class:`neurodeploy.lower.network.LoweredNetwork`
(:func:`from_lowered`) or from a neurodeploy NIR graph (:func:`from_graph`); the calibration networks of the
Loihi 2 compiler tables (plain layer lists) are built in ``mapping/reference_nets.py``.

Shapes are normalised to (C, H, W): a 1-D population of n neurons is (n, 1, 1); token maps [D, N] are
(D, 1, N) so that tiling along W groups tokens.

Spikingformer's attention product (no synapse can multiply two activations) is mapped from what the
lowering built (:mod:`neurodeploy.lower.attention_graded`): Lava ``ProdNeuron`` populations (kind
``product``), ``GradedVec`` counts (kind ``accumulator``) and the graded ``einsum`` synapse groups between
them, each with its own core accounting in the profile (Loihi 2: ``[core] product_neurons`` /
``graded_vec_neurons``, ``[synapse_accounting] graded_synapses_per_unit``).  :func:`from_graph` does not
cost attention at all: it marks the layer as using ``activation_product`` (targets without it keep their
verdict) and ``MapNetwork.unmapped`` names it, so a target that supports it must be mapped from the
lowered network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..analysis.annotate import annotate
from ..errors import BadInputError, UnsupportedError
from ..graph.core import meta, node_shape
from ..graph.primitives import CONV, DENSE, kind_of, primitive_of
from ..lower.fixed_point import conv_out_hw
from ..lower.chains import conv_padding
from ..lower.network import GRADED_KINDS, einsum_fan_in, einsum_sides


def _operand_layers(lowered, name: str, _seen=None) -> tuple:
    """Source layers of the binary spike operands feeding a prod / graded_vec population (its firing rate
    is bounded by theirs); a graded population feeding itself (the tiled attention's moving count) adds none."""
    pops = {p.name: p for p in lowered.populations}
    seen = set() if _seen is None else _seen
    seen.add(name)
    out = []
    for s in lowered.synapses:
        if s.dst == name:
            src = pops[s.src]
            if src.kind in GRADED_KINDS:
                if src.name not in seen:
                    out.extend(_operand_layers(lowered, src.name, seen))
            else:
                out.append(src.source or src.name)
    return tuple(dict.fromkeys(out))


@dataclass
class MapPopulation:
    name: str
    shape: tuple                    # (C, H, W)
    layer: str = ""                 # source node / layer (reports, firing-rate lookup)
    kind: str = "lif"               # input | lif | readout | product | accumulator
    on_chip: bool = True            # False: spikes come from the host (they cost input axons only)
    neuron_model: str = "lif"
    rate_from: tuple = ()           # product neurons: node names whose firing rates bound this one's (min)

    @property
    def size(self) -> int:
        return int(math.prod(self.shape))


@dataclass
class MapSynapses:
    name: str
    src: str
    dst: str
    kind: str                       # dense | conv | structured
    layer: str = ""
    weight_bits: int = 8
    # dense: optional explicit weights (n_dst, n_src) for exact per-axon counts (else fully connected)
    weights: np.ndarray | None = None
    # conv geometry (kind == conv), PyTorch semantics; src/dst shapes from the populations
    kernel: tuple = (1, 1)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    groups: int = 1
    # structured (attention products): synapses per dst neuron, targets per src axon
    fan_in: int = 0
    targets_per_axon: int = 0
    max_delay: int = 0
    graded: bool = False

    def nnz(self, src_size: int, dst_shape: tuple) -> int:
        if self.kind == "dense":
            if self.weights is None:
                return src_size * int(math.prod(dst_shape))
            return int(self.weights.count_nonzero()) if sp.issparse(self.weights) else int(np.count_nonzero(self.weights))
        if self.kind == "conv":
            c_out, h, w = dst_shape
            cin_g = self._c_in // self.groups
            return c_out * h * w * cin_g * self.kernel[0] * self.kernel[1]
        return int(math.prod(dst_shape)) * self.fan_in

    dst_view: tuple = ()            # conv whose (C, H, W) output is flattened into the dst's (C, 1, H*W)
    _c_in: int = 0
    _dst_c: int = 0


@dataclass
class MapNetwork:
    name: str
    populations: list = field(default_factory=list)
    synapses: list = field(default_factory=list)
    operations: dict = field(default_factory=dict)     # operation -> [layers using it]
    time_steps: int = 1
    notes: list = field(default_factory=list)
    warnings: list = field(default_factory=list)    # what the lowering lost (e.g. groups quantized to zeros)
    unmapped: list = field(default_factory=list)       # layers not costed here (attention in from_graph)
    latency: int | None = None      # a lowered network's balanced pipeline depth (delays and skews included)

    def pop(self, name: str) -> MapPopulation:
        cache = self.__dict__.get("_pops")
        if cache is None or len(cache) != len(self.populations):
            cache = {p.name: p for p in self.populations}
            self.__dict__["_pops"] = cache
        if name in cache:
            return cache[name]
        raise BadInputError(f"mapping network {self.name}: no population named '{name}'")

    def incoming(self, name: str) -> list:
        cache = self.__dict__.get("_incoming")
        if cache is None or cache[0] != len(self.synapses):
            by: dict = {}
            for s in self.synapses:
                by.setdefault(s.dst, []).append(s)
            cache = (len(self.synapses), by)
            self.__dict__["_incoming"] = cache
        return cache[1].get(name, [])

    def use(self, op: str, layer: str) -> None:
        self.operations.setdefault(op, [])
        if layer not in self.operations[op]:
            self.operations[op].append(layer)

    def add_pop(self, p: MapPopulation) -> MapPopulation:
        self.populations.append(p)
        return p

    def add_syn(self, s: MapSynapses) -> MapSynapses:
        src = self.pop(s.src)
        if s.kind == "conv" and not s._c_in:
            s._c_in = src.shape[0]
        s._dst_c = self.pop(s.dst).shape[0]
        self.synapses.append(s)
        return s

    def depth(self) -> int:
        """Pipeline depth: the lowered network's balanced latency where known (its delay balancing says when
        each population works: delay relays and token-tile skews add steps beyond the hops), else the longest
        chain of synapse groups (each adds one time step, as in Lava)."""
        if self.latency is not None:
            return int(self.latency)
        order = [p.name for p in self.populations]
        d = {n: 0 for n in order}
        for _ in range(len(order)):
            changed = False
            for s in self.synapses:
                if d[s.dst] < d[s.src] + 1 and d[s.src] + 1 <= len(order):
                    d[s.dst] = d[s.src] + 1
                    changed = True
            if not changed:
                break
        return max(d.values()) if d else 0


def cxhw(shape) -> tuple:
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        return (shape[0], 1, 1)
    if len(shape) == 2:
        return (shape[0], 1, shape[1])
    if len(shape) == 3:
        return shape
    raise BadInputError(f"population shape {shape}: expected 1-3 dimensions")


# -- adapters -----------------------------------------------------------------------------------------------
def from_lowered(lowered, name: str = "lowered") -> MapNetwork:
    """From :class:`neurodeploy.lower.network.LoweredNetwork` (the lowering's output)."""
    net = MapNetwork(name=name, time_steps=int(lowered.metadata.get("time_steps", 0) or 1) if hasattr(lowered, "metadata") else 1)
    if getattr(lowered, "metadata", {}).get("latency") is not None:      # balanced: when each population works
        net.latency = int(lowered.metadata["latency"])
    for p in lowered.populations:
        kind = getattr(p, "kind", "lif")
        input_kind = getattr(p, "input_kind", "")
        on_chip = not (kind == "input" and input_kind in ("spikes", "graded"))
        if kind == "input" and input_kind == "bias":
            on_chip = False  # values go to another population's bias_mant, no neurons of its own
        if kind in GRADED_KINDS:
            # ProdNeuron / GradedVec (microcoded, graded output); token axis last (tiled along x)
            shp = tuple(int(x) for x in p.shape)
            shp = (int(math.prod(shp[:-1])), 1, shp[-1]) if len(shp) > 1 else (shp[0], 1, 1)
            layer = getattr(p, "source", "") or p.name
            net.add_pop(MapPopulation(p.name, shp, layer, "product" if kind == "prod" else "accumulator",
                                      True, neuron_model="programmable",
                                      rate_from=_operand_layers(lowered, p.name)))
            net.use("activation_product" if kind == "prod" else "graded_spikes", layer)
            continue
        if kind == "relay":     # graded relay (spike counts): a programmable neuron sending graded spikes
            net.add_pop(MapPopulation(p.name, cxhw(p.shape), getattr(p, "source", "") or p.name, "accumulator",
                                      True, neuron_model="programmable"))
            net.use("graded_spikes", p.source or p.name)
            continue
        net.add_pop(MapPopulation(p.name, cxhw(p.shape), getattr(p, "source", "") or p.name, kind, on_chip,
                                  neuron_model="lif" if kind != "input" else "input"))
        if getattr(p, "bias_input", ""):
            net.use("bias_input", p.source or p.name)
    for s in lowered.synapses:
        bits = int(getattr(s, "num_weight_bits", 8) or 8)
        delay = int(lowered.max_delay(s) - s.balance_delay) if getattr(s, "delays", None) is not None else 0
        layer = getattr(s, "source", "") or s.name
        graded = bool(getattr(s, "graded", False))
        if s.kind in ("dense", "sparse"):
            # sparse weights stay a scipy CSR matrix: the mapper counts its connections per axon
            w = s.weights.tocsr() if sp.issparse(s.weights) else np.asarray(s.weights)
            net.add_syn(MapSynapses(s.name, s.src, s.dst, "dense", layer, bits, weights=w, max_delay=delay,
                                    graded=graded))
            net.use("dense", layer)
        elif s.kind == "einsum":
            # structured graded / broadcast group: fan-in (summed axes) and targets per axon (broadcast axes)
            src_ax, dst_ax = einsum_sides(s)
            tpa = int(math.prod(int(s.axes[a]) for a in dst_ax if a not in src_ax))
            net.add_syn(MapSynapses(s.name, s.src, s.dst, "structured", layer, bits, fan_in=einsum_fan_in(s),
                                    targets_per_axon=tpa, max_delay=int(s.balance_delay),
                                    graded=bool(s.graded)))
        elif s.kind == "conv":
            kshape = np.shape(s.weights)
            src_pop = net.pop(s.src)
            view = cxhw(s.src_view) if getattr(s, "src_view", ()) else src_pop.shape
            oshape = (int(kshape[0]),) + conv_out_hw(view[1:], kshape[2:4], s.stride, s.padding, s.dilation)
            dst_shape = net.pop(s.dst).shape
            if view != src_pop.shape:
                # a conv on a reshaped view of its source: same connections, counted without geometry
                k = int(kshape[2]) * int(kshape[3])
                net.add_syn(MapSynapses(s.name, s.src, s.dst, "structured", layer, bits,
                                        fan_in=k * int(kshape[1]),
                                        targets_per_axon=max(1, round(k * oshape[0] / int(s.groups)
                                                                      / (s.stride[0] * s.stride[1]))),
                                        graded=graded))
            else:
                net.add_syn(MapSynapses(s.name, s.src, s.dst, "conv", layer, bits, kernel=tuple(kshape[2:4]),
                                        stride=tuple(s.stride), padding=tuple(s.padding), groups=int(s.groups),
                                        graded=graded, dst_view=oshape if oshape != dst_shape else ()))
            net.use("conv2d", layer)
        else:
            raise BadInputError(f"lowered synapse '{s.name}': unknown kind '{s.kind}'")
        if getattr(s, "graded", False):
            net.use("graded_spikes", layer)
    for a in getattr(lowered, "attention", []):
        # a process op (attention="process"): neurodeploy's custom Lava process, nothing a chip runs
        layer = getattr(a, "source", "") or a.name
        net.use("activation_product", layer)
        net.unmapped.append(layer)
        net.notes.append(f"{layer}: attention lowered as a custom process (attention='process'); not mapped: "
                         "lower with the default attention='graded' to map its product neurons")
    for p in net.populations:
        if p.kind == "readout":
            net.use("readout", p.layer)
    zero = list(getattr(lowered, "metadata", {}).get("zero_weight_groups", []))
    if zero:
        more = f" and {len(zero) - 3} more" if len(zero) > 3 else ""
        net.warnings.append(f"{len(zero)} synapse group(s) quantized to all-zero weights, so their input is dropped: "
                            f"{', '.join(zero[:3])}{more} (loihi2/summary.json 'quantization', rel_error 1.0)")
    return net


def _pair(v) -> tuple[int, int]:
    a = np.asarray(v).ravel()
    if a.size >= 2:
        return int(a[0]), int(a[1])
    return int(a[0]), int(a[0])


def _one(v) -> int:
    return int(np.asarray(v).ravel()[0])


#: the primitives whose weights make one synapse group of the fit
_DIRECT = CONV + DENSE + ("SumPool2d",)


def from_graph(graph, name: str | None = None, residual: str = "relay") -> MapNetwork:
    """From a neurodeploy NIR graph (docs/nir.md).

    Populations: every spiking node (LIF / IF / CubaLIF / Threshold, the OR of a max-pool included), the
    ``readout`` Affine (a non-spiking integrator) and the graph input (host side, off chip: real-valued or
    event input enters the first cores as graded / spike messages).  Synapse groups: every Conv / Affine /
    SumPool from its spiking source (through Flatten and routing nodes) into every population it feeds; a
    chain of linear nodes with no neuron in between (the residual stream into the readout) is one dense
    group per source.  The attention extension node is not costed (``unmapped``; see the module docstring).

    ``residual``: ``relay`` (a LIF fed by several synaptic nodes, i.e. the residual stream, reads one graded
    relay population per partial sum; the readout reads the final stream through a token-sum population) or
    ``direct`` (every contributing synaptic node becomes its own synapse group into the LIF; binary spikes
    only, but fan-in grows with depth)."""
    ann = annotate(graph)
    graph = ann.flat       # nested subgraphs inlined (the attention extension stays one node)
    # every node type this mapping knows; anything else (LI, I, Delay, Scale, AvgPool2d...) is refused here
    # rather than dropped from the network
    for n in ann.order:
        info = ann.nodes[n]
        if info.kind not in ("io", "spiking", "synaptic", "pool", "reshape", "attention") or \
                primitive_of(info.node, n) == "AvgPool2d":
            raise UnsupportedError(f"node '{n}': the chip-fit mapping of the NIR graph cannot handle "
                                   f"{primitive_of(info.node, n)}" + (" (nested subgraph)" if info.kind == "subgraph" else ""))
    preds = ann.preds
    T = int(ann.time_steps or 1)
    net = MapNetwork(name=name or str(meta(ann.graph, "neurodeploy.arch", "nir-graph")), time_steps=T)
    order = ann.order

    def prim(n):
        """The NIR primitive node n is (the one table: graph.primitives)."""
        return primitive_of(graph.nodes[n], n)

    def role(n):
        """The role the graph declares (an inferred role does not make a population here)."""
        return None if ann.nodes[n].role_inferred else ann.nodes[n].role

    pops: set[str] = set()
    tokens_seen = [0]
    for n in order:
        if ann.nodes[n].kind == "attention":
            tokens_seen[0] = ann.nodes[n].ops.tokens
        node = graph.nodes[n]
        if prim(n) == "Input":
            shp = node_shape(node) or tuple(np.asarray(next(iter(node.input_type.values()))).tolist())
            net.add_pop(MapPopulation(n, cxhw(shp), n, "input", on_chip=False, neuron_model="input"))
            pops.add(n)
        elif kind_of(node, n) == "spiking":
            # a Threshold (the OR of a max-pool) is a memoryless LIF (full decay) on every target
            net.add_pop(MapPopulation(n, cxhw(node_shape(node)), n, "lif", neuron_model="if" if prim(n) == "IF" else "lif"))
            pops.add(n)
        elif prim(n) in DENSE and role(n) == "readout":
            net.add_pop(MapPopulation(n, cxhw(node_shape(node)), n, "readout"))
            net.use("readout", n)
            pops.add(n)

    def sources(n, seen=None):
        """Populations feeding node n's *input* through pass-through nodes (flatten, routing, sums)."""
        out = []
        for p in preds.get(n, []):
            if p in pops:
                out.append((p, None))
            elif prim(p) == "Flatten" or role(p) == "routing":
                out.extend(sources(p))
            else:
                out.append((None, p))   # a synaptic (or other) node
        return out

    def synaptic_sources(n):
        """Ultimate spiking sources of synaptic node n's input: [(population, node n)]."""
        res = []
        for pop, other in sources(n):
            if pop is not None:
                res.append(pop)
            else:
                res.extend(s for s, _ in _linear_chain(other))
        return res

    def _linear_chain(n):
        """(source population, first synaptic node) pairs for a non-spiking value node n."""
        out = []
        if prim(n) in _DIRECT:
            for s in synaptic_sources(n):
                out.append((s, n))
        elif ann.nodes[n].kind == "attention":
            pass
        else:
            for pop, other in sources(n):
                if pop is not None:
                    out.append((pop, n))
                elif other is not None:
                    out.extend(_linear_chain(other))
        return out

    def geometry(node, name):
        if prim(name) == "Conv2d":
            w = np.asarray(node.weight)
            return dict(kind="conv", kernel=tuple(w.shape[2:4]), stride=_pair(node.stride),
                        padding=conv_padding(node, name, 2), groups=_one(node.groups))
        if prim(name) == "Conv1d":
            w = np.asarray(node.weight)
            return dict(kind="conv", kernel=(1, int(w.shape[2])), stride=(1, _one(node.stride)),
                        padding=(0, conv_padding(node, name, 1)[0]), groups=_one(node.groups))
        if prim(name) == "SumPool2d":
            return dict(kind="conv", kernel=_pair(node.kernel_size), stride=_pair(node.stride), padding=_pair(node.padding), groups=-1)
        return dict(kind="dense")

    topo = {n: i for i, n in enumerate(order)}

    def add_group(syn_name, src, dst_name, layer=None):
        """Synapse group of synaptic node ``syn_name`` from population ``src`` into population ``dst_name``."""
        node = graph.nodes[syn_name]
        dst = net.pop(dst_name)
        src_pop = net.pop(src)
        layer = layer or syn_name
        g = geometry(node, syn_name)
        out_shape = cxhw(node_shape(node)) if node_shape(node) else dst.shape
        gname = f"{syn_name}:{src}->{dst_name}"
        if g["kind"] == "conv" and out_shape != dst.shape and out_shape[0] == dst.shape[0] and \
                out_shape[1] * out_shape[2] == dst.shape[1] * dst.shape[2]:
            # a spatial conv whose output is flattened into tokens: keep its geometry (token range -> rows)
            groups = src_pop.shape[0] if g["groups"] == -1 else g["groups"]
            net.add_syn(MapSynapses(gname, src, dst_name, "conv", layer, kernel=g["kernel"], stride=g["stride"],
                                    padding=g["padding"], groups=groups, dst_view=out_shape))
            net.use("conv2d", layer)
        elif g["kind"] == "conv" and out_shape != dst.shape:
            # any other reshaped conv: same synapses, counted without geometry
            groups = src_pop.shape[0] if g["groups"] == -1 else g["groups"]
            k = g["kernel"][0] * g["kernel"][1]
            net.add_syn(MapSynapses(gname, src, dst_name, "structured", layer, fan_in=k * src_pop.shape[0] // groups,
                                    targets_per_axon=max(1, round(k * out_shape[0] / groups / (g["stride"][0] * g["stride"][1])))))
            net.use("conv2d", layer)
        elif g["kind"] == "conv":
            groups = src_pop.shape[0] if g["groups"] == -1 else g["groups"]
            net.add_syn(MapSynapses(gname, src, dst_name, "conv", layer, kernel=g["kernel"], stride=g["stride"],
                                    padding=g["padding"], groups=groups))
            net.use({"SumPool2d": "sumpool", "Conv1d": "conv1d"}.get(prim(syn_name), "conv2d"), layer)
        else:
            net.add_syn(MapSynapses(gname, src, dst_name, "dense", layer))
            net.use("dense", layer)

    streams: dict = {}

    def stream_for(contribs, shape):
        """Relay population carrying the sum of ``contribs`` (residual stream) as graded spikes."""
        key = tuple(contribs)
        if key in streams:
            return streams[key]
        name = f"stream@{key[-1][1]}"
        net.add_pop(MapPopulation(name, shape, key[-1][1], "accumulator", neuron_model="programmable"))
        if len(key) > 1:
            prev = stream_for(key[:-1], shape)
            net.add_syn(MapSynapses(f"{prev}->{name}", prev, name, "structured", key[-1][1], fan_in=1, targets_per_axon=1, graded=True))
        add_group(key[-1][1], key[-1][0], name)
        net.use("graded_spikes", key[-1][1])
        streams[key] = name
        return name

    for n in order:
        if n not in pops or prim(n) == "Input":
            continue
        dst = net.pop(n)
        contribs = []
        for pop, other in sources(n):
            if pop is not None:  # neuron -> neuron without a synaptic node: one-to-one
                net.add_syn(MapSynapses(f"{pop}->{n}", pop, n, "structured", n, fan_in=1, targets_per_axon=1))
                continue
            if ann.nodes[other].kind == "attention":
                # not costed from the graph: the chip fit maps the product neurons the lowering builds
                net.use("activation_product", other)
                net.use("graded_spikes", other)
                net.unmapped.append(other)
                tokens_seen[0] = ann.nodes[other].ops.tokens
                continue
            direct = prim(other) in _DIRECT
            if direct and role(other) != "readout" and dst.kind != "readout":
                contribs.extend((s, other) for s in synaptic_sources(other))
            else:
                # a linear chain without neurons (the residual stream into the readout)
                chain = _linear_chain(other) if not direct else [(s, other) for s in synaptic_sources(other)]
                contribs.extend(chain)
        seen = set()
        contribs = [c for c in sorted(contribs, key=lambda c: topo[c[1]]) if not (c in seen or seen.add(c))]
        if not contribs:
            continue
        if dst.kind == "readout":
            if residual == "relay":
                first = graph.nodes[contribs[-1][1]]
                shp = cxhw(node_shape(first)) if node_shape(first) else None
                shape = (shp[0], 1, shp[1] * shp[2]) if shp else (1, 1, 1)
                st = stream_for(contribs, shape) if len(contribs) > 1 else None
                N = tokens_seen[0]
                if st is not None and N and shape[2] == N:
                    # mean over tokens, then the head: exact rewrite of the folded head (docs/nir.md)
                    tm = net.add_pop(MapPopulation(f"{n}.token_sum", (shape[0], 1, 1), n, "accumulator", neuron_model="programmable"))
                    net.add_syn(MapSynapses(f"{st}->{tm.name}", st, tm.name, "structured", n, fan_in=N, targets_per_axon=1, graded=True))
                    net.add_syn(MapSynapses(f"{tm.name}->{n}", tm.name, n, "dense", n, graded=True))
                    net.use("dense", n)
                    net.notes.append(f"{n}: readout as token sum ({N} tokens) then the {shape[0]} x {dst.size} head")
                    continue
                if st is not None:
                    net.add_syn(MapSynapses(f"{st}->{n}", st, n, "dense", n, graded=True))
                    net.use("dense", n)
                    continue
            for s, first in contribs:
                net.add_syn(MapSynapses(f"{first}:{s}->{n}", s, n, "dense", n))
            net.use("dense", n)
            continue
        if residual == "relay" and len(contribs) > 1:
            st = stream_for(contribs, dst.shape)
            net.add_syn(MapSynapses(f"{st}->{n}", st, n, "structured", n, fan_in=1, targets_per_axon=1, graded=True))
        else:
            for s, other in contribs:
                add_group(other, s, n)
    if streams:
        net.notes.append(f"residual stream carried by {len(streams)} graded relay population(s) (one per partial sum) "
                         "instead of re-synapsing every earlier branch into every later LIF")
    return net
