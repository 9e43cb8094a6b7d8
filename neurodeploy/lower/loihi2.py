"""The Loihi 2 lowering: a NIR graph (docs/nir.md) -> a quantized, delay-balanced :class:`LoweredNetwork`
(Loihi 2 fixed point as Lava computes it; docs/lowering.md).

:func:`lower_graph` runs the pass flow of :mod:`.passes`: ``lower_nir`` (:class:`Loihi2Lowering`), then
:data:`~neurodeploy.lower.passes.LOIHI2_FLOW` (graded attention, fan-in splitting, delay balancing once, last),
recorded in ``net.metadata["passes"]``.  ``lower_nir`` orchestrates four parts: :mod:`.neurons` (each neuron
node -> one CUBA LIF population, on :class:`neurodeploy.lif.LIFParams`), :mod:`.chains` (each input term, a
chain of linear nodes from one source, -> one float synapse group; the readout, the linear chain feeding the
graph output, -> a non-spiking integrator whose v is the sum over steps of its input times ``readout_scale``),
:mod:`.stream` (each residual-stream value built once, as a graded relay) and :mod:`.quantize` (scale, integer
weights, biases, delays, sign splits, the host encoder of a real-valued input).  The ``spiking_attention``
extension node becomes an :class:`Attention` op from its q, k, v populations.  Node kinds come from the
annotation (:mod:`neurodeploy.analysis.annotate`), which reads the one table of primitives.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..analysis.annotate import LOWERING, AnnotatedGraph, annotate
from ..errors import BadInputError, UnsupportedError
from ..graph.attention import attention_spec
from ..graph.maxpool import maxpool_spec
from ..graph.core import graph_dt, meta
from ..graph.primitives import KINDS, primitive_of
from .balance import check_loops
from .chains import (Chains, Group, PopulationPlan, Term, Value, global_pool, graded_group, node_shape, pooled_relay,
                     pop_shape)
from .maxpool import maxpool_parts
from .network import VTH_MAX, Attention, LoweredNetwork, Population
from .neurons import DU_NONE, neuron_population
from .passes import LOIHI2_FLOW, run_passes
from .quantize import (attention_scale, bias_registers, encoder_record, host_encoder, make_synapses,
                       population_scale, row_abs_sum, split_delays, split_signs, with_delays)
from .stream import StreamPlan, plan_stream
from .validate import check_lowering_inputs

#: the population that spikes every step (constant input 1; Affine biases into current-based neurons)
CONST_POP = "const1"


class Loihi2Lowering:
    """The ``lower_nir`` pass: one annotated graph -> populations, synapse groups, attention ops (unbalanced).
    ``report``: per population its scale, groups (weight exponent, relative error, clipped) and registers."""

    def __init__(self, ann: AnnotatedGraph, T, scale, rounding, input_range, dt, bias_exp_min=0,
                 split_signs=False, residual_stream="relay", stream_scale="level"):
        self.ann = ann
        self.g = ann.flat
        self.pred = ann.preds
        self.order = ann.order
        self.T, self.fixed_scale, self.rounding = T, scale, rounding
        self.input_range, self.dt, self.bias_exp_min = input_range, dt, int(bias_exp_min)
        self.split_signs, self.residual_stream, self.stream_scale = split_signs, residual_stream, stream_scale
        self.chains = Chains(self.g)
        self.report = {"layers": [], "clipped_weights": 0, "clipped_biases": 0}
        self.relays = {}            # pooled-readout relays, by name
        self.graded_src = {}        # max-pool node -> (payload scale S, bound of |value| in model units)
        self.host_pools = set()     # max-pools of the host-encoded input layer (computed by the host encoder)
        self.encoders = []
        self.need_const = False

    # ---------------------------------------------------------------- structure
    def kind(self, name):
        """How this lowering treats node ``name`` (the annotation's ``lowering``, from the primitive kind)."""
        info = self.ann.nodes[name]
        if info.kind == "subgraph":
            raise UnsupportedError(f"node '{name}': nested NIR subgraph (type NIRGraph) cannot be lowered to Loihi 2 "
                                   f"(only the spiking_attention extension is; {info.lowering_note or 'flatten it'})")
        if info.lowering is None:
            known = sorted(c.__name__ for c, kk in KINDS.items() if LOWERING.get(kk))
            raise UnsupportedError(f"node '{name}': NIR type {primitive_of(info.node, name)} cannot be lowered to "
                                   f"Loihi 2 (supported: {', '.join(known)}, spiking_attention)")
        return info.lowering

    def value(self, name, memo) -> Value:
        """The sum of terms a node outputs (neurons and the input are sources)."""
        if name in memo:
            return memo[name]
        k = self.kind(name)
        if k in ("neuron", "input"):
            v = Value([Term(name, [])])
        elif k == "attention":
            v = Value([], [name])
        elif k == "maxpool":
            # a source of graded values (its own populations, :mod:`.maxpool`); the bias of the pooled map
            # (per channel) commutes with the max, so it is pushed through and added by the readers.  A pool
            # of the host-encoded input layer alone stays on the host: one more op of the input's chain,
            # which the host encoder applies after its conv (:meth:`groups`)
            pvs = [self.value(p, memo) for p in self.pred[name]]
            if any(pv.att for pv in pvs):
                raise UnsupportedError(f"node '{name}': a max-pool of the attention output cannot be lowered")
            terms = [t for pv in pvs for t in pv.terms]
            if self.domain == "real" and any(t.src == self.inp for t in terms):
                if len(terms) != 1:
                    raise UnsupportedError(f"node '{name}': a max-pool of the host-encoded input layer summed with "
                                           "other inputs cannot be lowered to Loihi 2 (the host pools one conv)")
                self.host_pools.add(name)
                v = Value([Term(terms[0].src, list(terms[0].ops) + [name])])
            else:
                v = Value([Term(name, [])])
            v.bias_nodes += [b + [name] for pv in pvs for b in pv.bias_nodes]
            self.pool_bias_check(name, pvs)
        elif k == "linear":
            v = Value()
            for p in self.pred[name]:
                pv = self.value(p, memo)
                if pv.att:
                    raise UnsupportedError(f"node '{name}': a linear map after the attention output "
                                           "cannot be lowered (the attention must feed a LIF directly)")
                v.terms += [Term(t.src, t.ops + [name]) for t in pv.terms]
                v.bias_nodes += [b + [name] for b in pv.bias_nodes]
            v.bias_nodes.append([name])
        else:
            raise UnsupportedError(f"node '{name}': cannot be used as an input")
        memo[name] = v
        return v

    def maxpool_plan(self, mp, memo) -> PopulationPlan:
        """The input relay of max-pool node ``mp``: its pooled values (the sum of its input terms, no bias) at
        one integer scale; checks that the bias it leaves to the readers is one value per channel."""
        val = Value()
        for p in self.pred[mp]:
            pv = self.value(p, memo)
            val.terms += pv.terms
        spec = maxpool_spec(self.g.nodes[mp])
        shape = (spec.channels,) + tuple(spec.in_hw)
        for t in val.terms:
            if t.src in self.graded_src or self.kind(t.src) == "maxpool":
                raise UnsupportedError(f"node '{mp}': a max-pool of another max-pool's output cannot be lowered")
        return PopulationPlan(val, np.ones(int(np.prod(shape))), shape, 0, False, 1.0, "relay", mp, DU_NONE)

    def pool_bias_check(self, mp, pvs) -> None:
        """The bias max-pool ``mp``'s input values ``pvs`` leave to its readers must be one value per channel
        (only a per-channel bias commutes with the max)."""
        spec = maxpool_spec(self.g.nodes[mp])
        bias = np.zeros(spec.channels * int(np.prod(spec.in_hw)))
        for pv in pvs:
            for chain in pv.bias_nodes:
                b = self.chains.bias_vector(chain)
                if b is not None:
                    bias += b
        per = bias.reshape(spec.channels, -1)
        if not np.all(per == per[:, :1]):
            raise UnsupportedError(f"node '{mp}': the max-pool's input has a bias that differs within a channel "
                                   "(only a per-channel bias commutes with the max)")

    def plans(self, neuron_nodes, readout_node, memo) -> dict:
        """A :class:`PopulationPlan` per destination: every neuron node, then the readout (if any)."""
        out = {}
        for dst in neuron_nodes:
            node = self.g.nodes[dst]
            shape = node_shape(node, "output") or node_shape(node, "input")
            val = Value()
            for p in self.pred[dst]:
                pv = self.value(p, memo)
                val.terms += pv.terms
                val.att += pv.att
                val.bias_nodes += pv.bias_nodes
            npop = neuron_population(dst, node, shape, self.dt, self.rounding)
            nm = npop.map
            out[dst] = PopulationPlan(val, npop.rowgain, shape, nm.dv, npop.inclusive, nm.memory, nm.kind, dst,
                                      nm.du, npop.leak, npop.v0)
        if readout_node is not None:
            shape = node_shape(self.g.nodes[readout_node], "output")
            out["readout"] = PopulationPlan(self.value(readout_node, memo), np.ones(int(np.prod(shape))), shape,
                                            0, False, 1.0, "readout", "readout", DU_NONE, None)
        return out

    # ---------------------------------------------------------------- one population
    def groups(self, net, name, pl: PopulationPlan, stream: StreamPlan) -> list:
        """The float synapse groups (:class:`Group`) into population ``name``, one per input term."""
        out = []
        for t in pl.value.terms:
            if t.src in stream.relays:
                # (a relay reads its parent relay at weight m 2^e, S / S_parent; a reader reads its relay at 1)
                m, e, err = stream.parent_weight.get(name, (1, 0, 0.0)) if pl.kind == "relay" else (1, 0, 0.0)
                out.append(Group("stream", (m, err), term=t, weight_exp=e))
                continue
            src_shape = self.in_shape if t.src == self.inp else node_shape(self.g.nodes[t.src], "output")
            ops, rowgain, pool = list(t.ops), pl.rowgain, None
            if ops and ops[-1] in self.host_pools:
                ops, rowgain, pool = self.host_pool_chain(ops, pl)
            delays, ops = split_delays(self.g, ops, src_shape, self.dt)
            key = (t.src, tuple(t.ops))
            if pl.kind == "relay" and key in stream.groups:
                grp = stream.groups.pop(key)            # computed once by the stream plan
            else:
                grp = self.chains.chain_structure(ops, src_shape, rowgain, pl.node,
                                                  pool_relay=t.src != self.inp and t.src not in self.graded_src)
            if pool is not None:
                if grp.kind != "conv" or delays is not None:
                    raise UnsupportedError(f"node '{t.ops[-1]}': the host encoder max-pools one conv of the input "
                                           f"only (the chain {t.ops[:-1]} is not one conv)")
                grp.host_pool = pool
            grp.term = t
            if delays is not None:
                grp = with_delays(grp, delays, pl.node)
            if t.src in self.graded_src:
                grp = self.graded_mean(net, t, grp, src_shape, pl) or graded_group(grp, *self.graded_src[t.src], pl.node)
            if grp.kind == "relay":
                if t.src == self.inp:
                    grp.weights = None
                else:
                    # graded counts from a relay population into a dense group (see Chains.pooled_readout)
                    grp.term = Term(pooled_relay(net, self.relays, self.popname.get(t.src, t.src), src_shape,
                                                 grp.native), t.ops)
                grp.kind = "dense"
            if grp.weights is None:
                raise UnsupportedError(f"node '{pl.node}': the input chain {ops} is too large for a dense group")
            out.append(grp)
        return out

    def graded_mean(self, net, t, grp: Group, src_shape, pl: PopulationPlan):
        """A mean over every position of a graded source (the SDT head's token mean of its max-pooled tokenizer
        output ``x_feat``), or None for any other chain.  Read directly, each weight is S_reader / (S_src P)
        (P positions): below the 8-bit mantissa at the smallest weight exponent (2^-7) for the full-size models,
        so the whole term would quantize to zeros.  Instead a relay ``<src>.sum`` (C,) sums each channel's
        payloads through a graded Sparse group of ones at weight exponent -k (the one floor of the sum, k the
        smallest shift that keeps the sum's payload within 2^17, as the max-pool relays are), and the reader
        reads it at the per-channel weight w_c (the pool's 1/P times the reader's gain) on a payload of scale
        S_src / 2^k: its mantissas are 2^k / P times the direct ones, as large as any term out of the max-pool."""
        c = grp.native
        shape = tuple(pop_shape(src_shape))
        if grp.kind != "conv" or grp.delays is not None or grp.host_pool is not None or len(shape) != 3 or \
                tuple(c.view) != shape or global_pool(c) is None or shape[1] * shape[2] < 2:
            return None
        C, P = shape[0], shape[1] * shape[2]
        S, xmax = self.graded_src[t.src]
        src = self.popname.get(t.src, t.src)
        bounds = net.metadata.setdefault("graded_bounds", {})
        top = float(bounds.get(src, S * xmax)) * P
        k = max(0, int(np.ceil(np.log2(top / float(1 << 17))))) if top > 0 else 0
        name = pooled_relay(net, self.relays, src, src_shape, shift=k)
        bounds[name] = top * 2.0 ** -k + 1
        # the pool's 1/P times the reader's gain, per unit of the sum (a conv group's gains are per channel)
        w = np.asarray(grp.weights, dtype=np.float64).reshape(C, -1)[:, 0]
        out = Group("sparse", sp.csr_matrix(sp.diags(w)), None, Term(name, t.ops))
        return graded_group(out, S * 2.0 ** -k, xmax * P, pl.node)

    def host_pool_chain(self, ops, pl: PopulationPlan) -> tuple:
        """A host-encoded input chain ending in max-pool ``ops[-1]``: ``(the chain before the pool, the
        reader's row gains on the pool's input grid, the pool)``.  The gains must be one positive value per
        channel (a positive per-channel gain commutes with the max)."""
        spec = maxpool_spec(self.g.nodes[ops[-1]])
        per = np.asarray(pl.rowgain, dtype=np.float64).reshape(spec.channels, -1)
        if not (np.all(per == per[:, :1]) and np.all(per > 0)):
            raise UnsupportedError(f"node '{pl.node}': reads the host-pooled '{ops[-1]}' with gains that are not one "
                                   "positive value per channel (they would not commute with the max)")
        return ops[:-1], np.repeat(per[:, 0], int(np.prod(spec.in_hw))), spec

    def population(self, net, name, pl: PopulationPlan, stream: StreamPlan) -> None:
        """Quantize population ``name`` and its incoming groups into ``net`` (and its report layer)."""
        n, dst, rowgain = int(np.prod(pl.shape)), pl.node, pl.rowgain
        groups = self.groups(net, name, pl, stream)
        bias = np.zeros(n)
        for chain in pl.value.bias_nodes:
            b = self.chains.bias_vector(chain)
            if b is not None:
                bias += b
        bias *= rowgain
        if pl.du != DU_NONE and np.any(bias):
            # a constant input (Affine bias) of a current-based neuron flows through u (it decays with du);
            # Lava's bias adds to v, so the constant comes from a neuron that spikes every step
            groups.append(Group("dense", bias.reshape(-1, 1).copy(), term=Term(self.const, [f"bias of {dst}"])))
            bias = np.zeros(n)
            self.need_const = True
        if pl.leak is not None:
            bias = bias + pl.leak           # v_leak / k_mem per step, in threshold units: Lava's bias
        att = None
        if pl.value.att:
            if len(pl.value.att) != 1 or pl.value.terms:
                raise UnsupportedError(f"node '{dst}': the attention output must be its only input")
            att = (pl.value.att[0], attention_spec(self.g.nodes[pl.value.att[0]]))
        # encoder terms (real input): host-side
        enc = [e for e in groups if e.term.src == self.inp and self.domain == "real"]
        if any(e.delays is not None for e in enc):
            raise UnsupportedError(f"node '{dst}': a Delay on a real-valued input cannot be lowered to Loihi 2 "
                                   "(the host encoder has no delays; declare the input binary or counts)")
        chip = [e for e in groups if not any(e is x for x in enc)]
        if self.split_signs:
            chip = split_signs(chip)
        m = None
        if att is not None:
            S, m = attention_scale(att[1], rowgain, dst)
        elif name in stream.scale:
            S = stream.scale[name]          # the stream's one scale (relays) or a reader's, S_stream / gain
        elif self.fixed_scale:
            S = self.fixed_scale
        else:
            S = population_scale(chip, enc, bias, n, du=pl.du, dv=pl.dv, readout=pl.kind == "readout", T=self.T,
                                 input_range=self.input_range, v0=pl.v0)
        dv = pl.dv
        if pl.kind == "readout":
            vth, S = VTH_MAX, float(S)
        elif pl.kind == "relay":
            vth, dv = 0, 0
        else:
            vth = int(S - 1) if pl.inclusive else int(S)
        syns, layer_groups, clipped = make_synapses(
            name, chip, S, n, lambda t: self.popname.get(t.src, t.src),
            lambda t: pop_shape(self.in_shape if t.src == self.inp else node_shape(self.g.nodes[t.src], "output")),
            shape=pl.shape)
        self.report["clipped_weights"] += clipped
        # ---- bias (constant part) and encoder
        bias_v = bias * S * 64.0
        bias_input, encoded = "", None
        if enc:
            if len(enc) != 1:
                raise UnsupportedError(f"node '{dst}': more than one encoder path")
            encoded, bound = host_encoder(enc[0], dst, self.in_shape, self.input_range, S, n, bias_v)
            bias_input = f"{name}.encoded"
        else:
            bound = float(np.abs(bias_v).max()) if n else 0.0
        bm, bexp, cb = bias_registers(bias_v, bound, self.bias_exp_min, pl.shape)
        self.report["clipped_biases"] += cb
        pshape = pop_shape(pl.shape)
        v0 = 0
        if pl.v0 is not None:
            # v_reset on the threshold's grid: vth << 6 = 64 S is v_th - v_reset, so -v_reset is
            # 64 S (-v_reset) / (v_th - v_reset) (exact when that is an integer)
            v0 = np.rint(pl.v0 * 64.0 * S).astype(np.int64).reshape(pshape)
            v0 = int(v0.reshape(-1)[0]) if np.all(v0 == v0.reshape(-1)[0]) else v0
        pop = Population(name, pshape, kind=pl.kind, du=int(pl.du), dv=int(dv), vth=int(vth),
                         bias_mant=bm if np.any(bm) else 0, bias_exp=bexp, source=dst, scale=float(S),
                         bias_input=bias_input, v_init=v0)
        if encoded is not None:
            net.populations.append(Population(bias_input, pop_shape(pl.shape), kind="input", input_kind="bias",
                                              source=self.inp))
            self.encoders.append(encoder_record(encoded, bias_input, self.inp, self.in_shape, rowgain, bias,
                                                S * 64.0 / (1 << bexp)))
        net.populations.append(pop)
        net.synapses += syns
        layer = {"population": name, "scale": S, "groups": layer_groups}
        if att is not None:
            an, spec = att
            qkv = self.attention_sources(an)
            net.attention.append(Attention(f"{an}", qkv[0], qkv[1], qkv[2], name, heads=spec.heads,
                                           dim=spec.dim, tokens=spec.tokens, weight=int(m), source=an))
            layer["attention_weight"] = int(m)
        layer.update({"du": int(pl.du), "dv": int(dv), "vth": int(vth), "bias_exp": bexp, "clipped_biases": cb})
        self.report["layers"].append(layer)
        return chip

    # ---------------------------------------------------------------- the pass
    def lower(self) -> LoweredNetwork:
        g = self.g
        net = LoweredNetwork(metadata={"source": "nir", "arch": str(meta(g, "neurodeploy.arch", "nir-file"))})
        inputs = [n for n in self.order if self.kind(n) == "input"]
        outputs = [n for n in self.order if self.kind(n) == "output"]
        if len(inputs) != 1 or len(outputs) != 1:
            raise UnsupportedError(f"graph must have one Input and one Output, found {inputs} and {outputs}")
        self.inp = inp = inputs[0]
        self.domain = str(meta(g, "neurodeploy.input_domain", "binary"))
        self.in_shape = node_shape(g.nodes[inp], "output") or node_shape(g.nodes[inp], "input")
        if self.domain in ("binary", "counts"):
            net.populations.append(Population("input", pop_shape(self.in_shape), kind="input",
                                              input_kind="spikes" if self.domain == "binary" else "graded",
                                              source=inp))
        elif self.domain != "real":
            raise BadInputError(f"graph metadata neurodeploy.input_domain '{self.domain}' is not binary/counts/real")
        self.const = CONST_POP
        while self.const in g.nodes or self.const == "readout":    # a node of that name: pick another
            self.const += "_"
        neuron_nodes = [n for n in self.order if self.kind(n) == "neuron"]
        self.popname = {inp: "input", self.const: self.const, **{n: n for n in neuron_nodes}}
        out_pred = self.pred[outputs[0]]
        readout_node = out_pred[0] if len(out_pred) == 1 and self.kind(out_pred[0]) == "linear" else None
        memo = {}
        pools = [n for n in self.order if self.kind(n) == "maxpool"]
        for mp in pools:
            self.value(mp, memo)            # decides which pools the host encoder computes (host_pools)
        pools = [n for n in pools if n not in self.host_pools]
        self.popname.update({n: n for n in pools})
        for mp in pools:        # max-pools first: their scales are fixed before any reader is quantized
            self.maxpool(net, mp, self.maxpool_plan(mp, memo))
        if readout_node is not None:
            self.value(readout_node, memo)          # the readout chain first (its memo serves the neurons)
        plans = self.plans(neuron_nodes, readout_node, memo)
        stream = StreamPlan(plans)
        if self.residual_stream == "relay" and not self.fixed_scale:
            stream = plan_stream(plans, inp, self.in_shape, self.domain, self.chains, self.graded_src,
                                 mode=self.stream_scale)
        for name, pl in stream.plans.items():
            self.population(net, name, pl, stream)
        if self.need_const:
            # one neuron that spikes every step (v = bias 1 > vth 0, then reset): the constant input 1
            net.populations.insert(1, Population(self.const, (1,), kind="lif", du=DU_NONE, dv=4096, vth=0,
                                                 bias_mant=1,
                                                 source="constant input 1 (Affine biases into current-based neurons)"))
        net.outputs = ["readout"] if readout_node is not None else [out_pred[0]]
        check_loops(net)
        out_pop = net.pop(net.outputs[0])
        net.metadata.update({"readout_scale": out_pop.scale if out_pop.kind == "readout" else 0.0,
                             "time_steps": int(self.T or 0)})
        net.encoders = self.encoders
        net.validate()
        return net

    def maxpool(self, net, mp, pl: PopulationPlan) -> None:
        """Max-pool node ``mp``: its input relay ``mp.in`` (quantized like any population, at the scale S its
        conv groups allow, payloads within 2^17), then the exact max tree of :mod:`.maxpool` into the relay
        ``mp`` that its readers read (graded, at payload scale S)."""
        x = f"{mp}.in"
        groups = self.population(net, x, pl, StreamPlan({x: pl}))
        S = float(net.pop(x).scale)
        rows = np.zeros(int(np.prod(pl.shape)))
        for g in groups:
            rows += row_abs_sum(g.kind, g.weights, rows.size) * g.in_bound
        xmax = float(rows.max()) if rows.size else 0.0
        spec = maxpool_spec(self.g.nodes[mp])
        pops, syns = maxpool_parts(mp, x, spec, mp)
        net.populations += pops
        net.synapses += syns
        # payload bounds the engine may use (|X| <= its integer weights' row sums; |P| <= 2 max|X|, |M| <= max|X|)
        xb = 0.0
        for s_ in net.synapses:
            if s_.dst == x:
                if s_.kind == "conv":
                    xb += float(np.abs(np.asarray(s_.weights)).reshape(np.shape(s_.weights)[0], -1).sum(1).max())
                else:
                    xb += float(row_abs_sum(s_.kind, s_.weights, net.pop(x).size).max()) * 2.0 ** s_.weight_exp + 1
        bounds = net.metadata.setdefault("graded_bounds", {})
        bounds[x] = xb
        bounds.update({p.name: (xb if p.kind == "relay" else 2 * xb) for p in pops})
        self.graded_src[mp] = (S, xmax)
        self.report.setdefault("maxpools", []).append({"node": mp, "scale": S,
                                      "populations": [x] + [p.name for p in pops], "value_bound": xmax})

    def attention_sources(self, an):
        """The q, k, v populations of attention node ``an``: the annotation's operands (found once, by the
        stack routing weights), each of which must be a spiking population."""
        info = self.ann.nodes[an]
        if info.attention is None:
            raise UnsupportedError(f"node '{an}': could not identify the Q, K, V stack routing ({info.attention_error})")
        out = [info.attention[t] for t in "qkv"]
        for t, src in zip("qkv", out):
            if self.kind(src) != "neuron":
                raise UnsupportedError(f"node '{info.attention[t + '_route']}': the attention's Q/K/V must be "
                                       f"spiking populations ('{src}' is not)")
        return out


def lower_graph(graph, T: int | None = None, scale: int | None = None, rounding: str = "nearest",
                input_range=(0.0, 1.0), bias_exp_min: int = 0, attention: str = "graded", split_signs: bool = False,
                attention_schedule: str = "parallel", residual_stream: str = "relay", stream_scale: str = "level",
                channel_splits=None):
    """Lower ``graph`` for Loihi 2; returns ``(LoweredNetwork, report)``.  ``T``: steps per sample (default from
    the graph metadata ``neurodeploy.time_steps``); ``scale``: force one integer scale for every population;
    ``rounding``: how decays dv are rounded: ``nearest`` or ``floor`` (truncation, as the NIR paper's
    Lava conversion);
    ``input_range``: bound of real-valued inputs (sizes the encoder's bias exponent);
    ``bias_exp_min``: smallest bias exponent (6 = biases in weight units, as netx files require);
    ``attention``: ``graded`` (default: Lava's ProdNeuron / GradedVec / graded Sparse only, the Loihi 2
    form, :mod:`neurodeploy.lower.attention_graded`) or ``process`` (one integer op run by neurodeploy's
    custom Lava process: faster in simulation, no chip equivalent);
    ``split_signs``: every mixed-sign spike group becomes an excitatory and an inhibitory group (one more
    bit of weight resolution, one more group each; docs/lowering.md, "cnn_sinabs: float vs fixed point");
    ``attention_schedule``: how the graded attention is built, one of
    :data:`~neurodeploy.lower.attention_graded.ATTENTION_SCHEDULES` (``parallel``: default; ``packed``: channels
    packed into 24-bit graded words, half the product neurons or fewer, 4 steps more; all exact; docs/lowering.md,
    "Attention schedules");
    ``residual_stream``: ``relay`` (default: each value of a residual stream is one graded relay population
    that its readers read once, :mod:`neurodeploy.lower.stream`) or ``expanded`` (every reader holds every
    earlier branch as its own synapse group: synapse memory grows with depth squared);
    ``stream_scale``: ``level`` (default: each stream relay gets the largest scale its own terms and readers
    allow, the stream's base scale times a power of two, and reads its parent relay shifted by the ratio) or
    ``one`` (one integer scale for the whole stream, set by its largest weight);
    ``channel_splits``: {population: [channel boundaries]} or a callable ``net -> that dict`` (a chip's core
    model, ``neurodeploy.mapping.channels.choose_channel_splits``): conv-fed populations cut by output channels
    into several processes (:mod:`neurodeploy.lower.channels`; the same neurons and spikes, fewer cores where
    the compiler tiles power-of-two channel counts at half a core); None: no cut;
    ``graph``: a NIR graph or its :class:`~neurodeploy.analysis.annotate.AnnotatedGraph` (a deployment hands
    over the one it built)."""
    check_lowering_inputs(graph, T, scale, rounding, input_range, bias_exp_min, attention, attention_schedule,
                          residual_stream, stream_scale)      # lower/validate.py
    ann = annotate(graph)
    if T is None:
        T = int(ann.time_steps or 0) or None
    low = Loihi2Lowering(ann, T, scale, rounding, input_range, graph_dt(ann.flat), bias_exp_min,
                         split_signs=bool(split_signs), residual_stream=residual_stream, stream_scale=stream_scale)
    net = low.lower()
    net.metadata["passes"] = ["lower_nir"]
    # groups whose every mantissa rounds to 0 while the model's weights are not 0: the term is dropped; the
    # chip fit turns them into report warnings (mapping.network.from_lowered)
    zero = [f"{g['synapse']} ({g['source']})" for L in low.report["layers"] for g in L["groups"]
            if g.get("rel_error", 0.0) >= 1.0]
    if zero:
        net.metadata["zero_weight_groups"] = zero
    flow = [p for p in LOIHI2_FLOW if (p != "graded_attention" or (attention == "graded" and net.attention))
            and (p != "split_channels" or channel_splits)]
    for step in flow:       # one pass at a time, so that a pass that returns a copy frees its input here
        net = run_passes(net, [step], schedule=attention_schedule, T=T, channels=channel_splits)
    return net, low.report
