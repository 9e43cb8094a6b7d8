"""Write the sequential part of a lowered network as a lava-dl netx ``.net`` HDF5 file.

netx (lava-dl 0.6.0) loads only chains of ``input``, ``conv``, ``flatten``, ``dense`` layers with CUBA
neurons.  ``write_netx`` writes the longest prefix of the lowered network that is such a chain and says
where and why it stopped.  Layer by layer:

* input: ``shape`` [C, H, W]; a population fed by a host-encoded bias becomes an input layer *with* a
  CUBA neuron (the caller sets ``in_layer.neuron.bias_mant`` per sample, as lava-dl's tests do); a spike
  input is an input layer without neuron;
* conv: PyTorch-layout weights (netx flips them for Lava), stride/padding/dilation as (H, W), groups,
  per-channel bias;
* dense: (out, in) integer weights (netx re-derives weight_exp/num_weight_bits; exact for integers in
  [-256, 254]), per-synapse delays, bias;
* neuron/: type CUBA, iDecay = du + 1, vDecay = dv, vThMant = vth, refDelay 1, gradedSpike False;
  netx fixes bias_exp = 6, so bias = bias_mant * 2**(bias_exp - 6) must be an integer.
Run the file with ``netx.hdf5.Network(net_config=path, reset_interval=R)`` where R is the sample period
in the summary (netx then zeroes layer k at step k + 1, exactly the lowered network's bias reset).
"""
from __future__ import annotations


import numpy as np

from ..fileio import atomic_h5
from ..lower.fixed_point import lava_conv_groups
from ..lower.network import LoweredNetwork


def _fits_int_weights(s) -> bool:
    w = np.asarray(s.weights, dtype=np.int64)
    e = int(s.weight_exp)
    if e < 0 and np.any(w % (1 << -e)):
        return False
    eff = w << e if e >= 0 else w >> -e
    mixed = eff.min() < 0 < eff.max()
    if mixed and np.any(eff % 2):
        return False
    return bool(eff.min() >= -256 and eff.max() <= (254 if mixed else 255))


def netx_chain(net: LoweredNetwork):
    """(chain of (population, synapse or None), reason it stops)."""
    out_of = {p.name: [] for p in net.populations}
    into = {p.name: [] for p in net.populations}
    for s in net.synapses:
        out_of[s.src].append(s)
        into[s.dst].append(s)
    for a in net.attention:
        for x in (a.q, a.k, a.v):
            out_of[x].append(a)
        into[a.dst].append(a)
    starts = [p for p in net.populations if p.kind == "input" and p.input_kind == "spikes"]
    starts += [p for p in net.populations if p.bias_input and not into[p.name]]
    if len(starts) != 1:
        return [], "netx needs exactly one input"
    if np.any(np.asarray(starts[0].v_init) != 0):
        return [], f"population '{starts[0].name}': initial v != 0 (v_reset != 0; netx starts v at 0)"
    chain = [(starts[0], None)]
    cur = starts[0]
    while True:
        outs = out_of[cur.name]
        if not outs:
            return chain, "end of network"
        if len(outs) > 1:
            return chain, f"population '{cur.name}' fans out to {len(outs)} groups (netx is sequential)"
        s = outs[0]
        if not hasattr(s, "kind"):
            return chain, f"'{s.name}' is an attention op (not expressible in netx)"
        if s.kind == "einsum":
            return chain, f"'{s.name}' is a graded attention group (ProdNeuron/GradedVec: not expressible in netx)"
        dst = net.pop(s.dst)
        if len(into[dst.name]) != 1:
            return chain, f"population '{dst.name}' sums {len(into[dst.name])} groups (residual; not in netx)"
        if dst.kind == "relay" or getattr(s, "graded", False):
            return chain, f"population '{dst.name}' is a graded relay (not expressible in netx)"
        if s.kind == "sparse" and s.weights.shape[0] * s.weights.shape[1] > (1 << 22):
            return chain, f"group '{s.name}' is a large sparse group (netx stores dense matrices)"
        if s.kind == "conv" and s.src_view and tuple(s.src_view) != tuple(cur.shape):
            return chain, f"conv group '{s.name}' reads a reshaped view of '{cur.name}'"
        if s.kind == "conv" and (s.balance_delay or len(dst.shape) != 3 or len(cur.shape) != 3):
            return chain, f"conv group '{s.name}' has a delay or a non-(C, H, W) target"
        if s.kind in ("dense", "sparse") and not _fits_int_weights(s):
            return chain, f"group '{s.name}': fractional weight exponent (netx takes integer weights)"
        if np.any(np.asarray(dst.v_init) != 0):
            return chain, f"population '{dst.name}': initial v != 0 (v_reset != 0; netx starts v at 0)"
        bm = np.broadcast_to(np.asarray(dst.bias_mant, dtype=np.int64), dst.shape)
        if dst.bias_exp < 6 and np.any(bm % (1 << (6 - dst.bias_exp))):
            return chain, f"population '{dst.name}': bias needs bias_exp {dst.bias_exp} < 6"
        if s.kind == "conv" and len(dst.shape) == 3 and np.any(bm != bm[:, :1, :1]):
            return chain, f"population '{dst.name}': conv bias not per channel"
        chain.append((dst, s))
        cur = dst


def write_netx(net: LoweredNetwork, path: str) -> dict:
    """Write the expressible prefix; returns {"layers", "populations", "stopped", "path"} (layers = 0:
    nothing written)."""
    chain, reason = netx_chain(net)
    if len(chain) < 2:
        return {"layers": 0, "populations": [], "stopped": reason, "path": None}

    def neuron(g, p):
        n = g.create_group("neuron")
        n.create_dataset("type", data=np.bytes_("CUBA"))
        n.create_dataset("iDecay", data=int(p.du) + 1)
        n.create_dataset("vDecay", data=int(p.dv))
        n.create_dataset("vThMant", data=int(p.vth))
        n.create_dataset("refDelay", data=1)
        n.create_dataset("gradedSpike", data=False)

    def bias_of(p):
        bm = np.broadcast_to(np.asarray(p.bias_mant, dtype=np.int64), p.shape)
        e = int(p.bias_exp) - 6
        return bm << e if e >= 0 else bm >> -e

    with atomic_h5(path) as h:  # in memory, then written: a full disk is one clean line (not an HDF5 segfault)
        layer = h.create_group("layer")
        sim = h.create_group("simulation")
        sim.create_dataset("Ts", data=1)
        sim.create_dataset("tSample", data=int(net.metadata.get("time_steps", 0) or 0))
        i = 0
        first, _ = chain[0]
        g = layer.create_group(str(i))
        g.create_dataset("type", data=np.array([b"input"], dtype="S10"))
        g.create_dataset("shape", data=np.asarray(first.shape, dtype=np.int64))
        if first.kind != "input":
            neuron(g, first)
        i += 1
        prev = first
        flat = len(first.shape) == 1
        for p, s in chain[1:]:
            if s.kind in ("dense", "sparse") and not flat:
                g = layer.create_group(str(i))
                g.create_dataset("type", data=np.array([b"flatten"], dtype="S10"))
                g.create_dataset("shape", data=np.array([prev.size, 1, 1]))
                i += 1
            g = layer.create_group(str(i))
            b = bias_of(p)
            if s.kind == "conv":
                # Lava's Conv (netx builds one per conv layer) holds at most 127 groups: merged, exactly
                w, groups = lava_conv_groups(np.asarray(s.weights, dtype=np.int64), s.groups)
                g.create_dataset("type", data=np.array([b"conv"], dtype="S10"))
                g.create_dataset("shape", data=np.asarray(p.shape, dtype=np.int64))
                g.create_dataset("inChannels", data=int(prev.shape[0]))
                g.create_dataset("outChannels", data=int(w.shape[0]))
                g.create_dataset("kernelSize", data=np.asarray(w.shape[2:4]))
                for key, val in (("stride", s.stride), ("padding", s.padding), ("dilation", s.dilation)):
                    g.create_dataset(key, data=np.asarray(val, dtype=np.int64))
                g.create_dataset("groups", data=int(groups))
                g.create_dataset("weight", data=w.astype(np.float32))
                if np.any(b):
                    g.create_dataset("bias", data=b[:, 0, 0].astype(np.float32))
            else:
                w = np.asarray(s.weights, dtype=np.int64)
                e = int(s.weight_exp)
                w = w << e if e >= 0 else w >> -e
                g.create_dataset("type", data=np.array([b"dense"], dtype="S10"))
                g.create_dataset("shape", data=np.array([p.size]))
                g.create_dataset("inFeatures", data=int(prev.size))
                g.create_dataset("outFeatures", data=int(p.size))
                g.create_dataset("weight", data=w.astype(np.float32))
                d = (0 if s.delays is None else np.asarray(s.delays)) + int(s.balance_delay)
                if np.any(d):
                    g.create_dataset("delay", data=np.broadcast_to(d, w.shape).astype(np.float32))
                if np.any(b):
                    g.create_dataset("bias", data=b.reshape(-1).astype(np.float32))
            neuron(g, p)
            i += 1
            prev = p
            flat = s.kind != "conv"
    return {"layers": len(chain), "populations": [p.name for p, _ in chain], "stopped": reason,
            "path": str(path)}
