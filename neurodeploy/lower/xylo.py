"""Xylo lowering (``xylo-audio2``, ``xylo-imu``, ``xylo-audio3``): NIR graph -> Xylo's integer network (the
*specification* of rockpool's mapper), quantized.  Its engine is :mod:`neurodeploy.sim.xylo`, its chip fit
:mod:`neurodeploy.mapping.xylo`, its target :mod:`neurodeploy.deploy.xylo`.

What is deployable: one ``Input`` (1-D), ``Linear`` / ``Affine`` (zero bias) weights, ``LIF`` / ``CubaLIF``
populations with ``v_leak = 0`` and ``v_reset = 0``, one ``Output`` fed by one neuron population.  Weights go
from the input or a population to a population; a weight from a population to itself (or to an earlier one)
is a recurrent weight.  Anything else is refused naming the node.

Lowering (the conventions of rockpool's Xylo mapper, written here from its documented behaviour):

* the output population becomes Xylo's output neurons; every other population is hidden, the population fed by
  the input first (input-expansion neurons, lowest ids), the populations feeding the output last (output-
  expansion neurons);
* ``dash = round(log2(tau / dt))`` for membrane and synapse (``dt``: graph metadata ``neurodeploy.dt``); a
  ``LIF`` has no synapse, Xylo always has one: it gets the fastest, ``dash_syn = 1`` (each input reaches the
  membrane over about 2 steps, with the same total charge);
* a weight into neuron i is scaled by ``r * w_in / (2^dash_mem * (2^dash_syn - 1))`` so that the integer
  neuron's steady state for a constant input equals the float neuron's (``v = r * w_in * x``);
* per-channel quantization as rockpool's ``channel_quantize``: every neuron's incoming weights (input and
  recurrent together; output weights apart) scaled so that the largest is 127, its threshold by the same factor
  (clipped to 16 bits by a smaller factor when it would overflow), all rounded (``np.round``);
* Xylo resets by subtracting the threshold and spikes at ``v >= threshold`` (NIR: reset to ``v_reset``,
  ``v > threshold``); hidden layers in a feed-forward chain each add one step of latency (Xylo's hidden
  spikes reach their targets at the next step).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import BadInputError, UnsupportedError
from ..graph.core import graph_dt, predecessors, topological_order
from ..graph.flatten import flatten_subgraphs
from ..graph.primitives import DENSE, primitive_of

CHIPS = ("xylo-audio2", "xylo-imu", "xylo-audio3")
MAX_DASH = 15                   # 4-bit bit-shift decay (REF 5.2)
WEIGHT_BITS, THRESHOLD_BITS = 8, 16
LIF_DASH_SYN = 1                # a LIF's synapse on Xylo: the fastest one


@dataclass
class XyloArtifact:
    chip: str
    spec: dict                          # integer specification (rockpool's mapper field names) + dt
    layers: list                        # [{name, kind, role, size, first_id}] in hidden-id order, output last
    n_in: int
    recurrent: list = field(default_factory=list)       # weight nodes that are recurrent on the chip
    float_spec: dict | None = None      # before quantization (weights scaled, thresholds, dashes)
    notes: list = field(default_factory=list)

    @property
    def n_hidden(self) -> int:
        return int(np.asarray(self.spec["weights_rec"]).shape[0])

    @property
    def n_out(self) -> int:
        return int(np.asarray(self.spec["weights_out"]).shape[1])

    def hidden_layers(self) -> list:
        return [L for L in self.layers if L["role"] != "output"]

    @property
    def summary(self) -> dict:
        nz = lambda k: int(np.count_nonzero(self.spec[k]))  # noqa: E731
        return {"target": self.chip, "latency_steps": len(self.hidden_layers()),
                "neurons": self.n_hidden + self.n_out,
                "synapses": nz("weights_in") + nz("weights_rec") + nz("weights_out"),
                "input_channels": self.n_in, "hidden_neurons": self.n_hidden,
                "output_neurons": self.n_out, "synapses_per_neuron": 1, "dt_s": float(self.spec["dt"]),
                "nonzero_weights": {"in": nz("weights_in"), "rec": nz("weights_rec"), "out": nz("weights_out")},
                "layers": self.layers, "recurrent_weights": self.recurrent, "notes": self.notes}


# ---------------------------------------------------------------------------------------------------- lowering
def _arr(node, name: str, attr: str, size: int) -> np.ndarray:
    v = getattr(node, attr, None)
    a = np.zeros(size) if v is None else np.asarray(v, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise BadInputError(f"{name}: {attr} is not finite")
    try:
        return np.broadcast_to(a.reshape(-1) if a.size > 1 else a.reshape(()), (size,)).astype(np.float64)
    except ValueError:
        raise BadInputError(f"{name}: {attr} of shape {a.shape} for {size} neurons") from None


def _dash(name: str, what: str, tau: np.ndarray, dt: float) -> np.ndarray:
    if np.any(tau <= dt):
        raise UnsupportedError(f"{name}: {what} {float(tau.min()):g} s <= dt {dt:g} s: no bit-shift decay on Xylo "
                               "(rockpool's mapper refuses it too)")
    d = np.round(np.log2(tau / dt)).astype(np.int64)
    if d.max() > MAX_DASH:
        raise UnsupportedError(f"{name}: {what} {float(tau.max()):g} s is {float(tau.max() / dt):g} steps: Xylo's "
                               f"bit-shift decay reaches 2^{MAX_DASH} steps")
    return d


def _neuron_params(name: str, node, dt: float) -> dict:
    n = int(np.prod(np.asarray(node.v_threshold).shape) or 1)
    prim = primitive_of(node, name)
    if prim == "CubaLIF":
        tau_mem, tau_syn = _arr(node, name, "tau_mem", n), _arr(node, name, "tau_syn", n)
        w_in = _arr(node, name, "w_in", n)
    else:
        tau_mem, tau_syn, w_in = _arr(node, name, "tau", n), None, np.ones(n)
    r, th = _arr(node, name, "r", n), _arr(node, name, "v_threshold", n)
    if np.any(_arr(node, name, "v_leak", n) != 0):
        raise UnsupportedError(f"{name}: v_leak != 0: Xylo neurons decay to 0")
    if np.any(_arr(node, name, "v_reset", n) != 0):
        raise UnsupportedError(f"{name}: v_reset != 0: Xylo resets by subtracting the threshold")
    if np.any(th <= 0):
        raise UnsupportedError(f"{name}: v_threshold <= 0: Xylo thresholds are positive")
    dm = _dash(name, "tau_mem" if tau_syn is not None else "tau", tau_mem, dt)
    ds = _dash(name, "tau_syn", tau_syn, dt) if tau_syn is not None else np.full(n, LIF_DASH_SYN, np.int64)
    gain = r * w_in / (2.0 ** dm * (2.0 ** ds - 1))
    return {"size": n, "dash_mem": dm, "dash_syn": ds, "threshold": th, "gain": gain,
            "kind": prim}


def _weight_matrix(name: str, node) -> np.ndarray:
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2:
        raise UnsupportedError(f"{name}: weight of shape {w.shape}: Xylo takes 2-D Linear/Affine weights")
    if not np.all(np.isfinite(w)):
        raise BadInputError(f"{name}: weight is not finite")
    b = getattr(node, "bias", None)
    if b is not None and np.any(np.asarray(b) != 0):
        raise UnsupportedError(f"{name}: Affine bias != 0: Xylo has no weight biases (rockpool's mapper drops them)")
    return w


def lower_graph(graph, chip: str) -> XyloArtifact:
    """The NIR graph as Xylo's integer network for ``chip`` (module docstring); refuses with
    :class:`UnsupportedError` naming the node."""
    if chip not in CHIPS:
        raise BadInputError(f"unknown Xylo chip {chip!r} (known: {', '.join(CHIPS)})")
    dt = graph_dt(graph)
    graph = flatten_subgraphs(graph)        # nested NIRGraph nodes (the NIR paper's braille RNN) inlined
    weights, neurons, inputs, outputs = {}, {}, [], []
    order = topological_order(graph)           # the first unsupported node in data-flow order is named
    for name in order + [n for n in graph.nodes if n not in order]:
        node = graph.nodes[name]
        prim = primitive_of(node, name)
        if prim == "Input":
            inputs.append(name)
        elif prim == "Output":
            outputs.append(name)
        elif prim in DENSE:
            weights[name] = node
        elif prim in ("LIF", "CubaLIF"):
            neurons[name] = node
        else:
            raise UnsupportedError(f"{name}: {prim} is not deployable on Xylo "
                                   "(Linear/Affine weights and LIF/CubaLIF neurons only)")
    if len(inputs) != 1 or len(outputs) != 1:
        raise UnsupportedError(f"Xylo takes one Input and one Output node (graph has {len(inputs)} and {len(outputs)})")
    inp, outp = inputs[0], outputs[0]
    in_shape = tuple(np.asarray(graph.nodes[inp].input_type["input"]).reshape(-1).tolist())
    if len(in_shape) != 1:
        raise UnsupportedError(f"{inp}: input of shape {in_shape}: Xylo takes a 1-D vector of input channels")
    n_in = int(in_shape[0])
    pred = predecessors(graph)
    succ: dict = {n: [] for n in graph.nodes}
    for s, d in graph.edges:
        succ[s].append(d)
    for w in weights:
        if len(pred[w]) != 1 or pred[w][0] not in neurons and pred[w][0] != inp:
            raise UnsupportedError(f"{w}: a Xylo weight reads one population or the input (reads {pred[w] or 'nothing'})")
        if len(succ[w]) != 1 or succ[w][0] not in neurons:
            raise UnsupportedError(f"{w}: a Xylo weight feeds one neuron population (feeds {succ[w] or 'nothing'})")
    for n in neurons:
        bad = [p for p in pred[n] if p not in weights]
        if bad:
            raise UnsupportedError(f"{n}: Xylo neurons take input only through Linear/Affine weights (fed by {bad[0]})")
        bad = [s for s in succ[n] if s not in weights and s != outp]
        if bad:
            raise UnsupportedError(f"{n}: feeds {bad[0]}, which is not a weight")
    for s in succ[inp]:
        if s not in weights:
            raise UnsupportedError(f"{inp}: the input must go through a weight first (feeds {s})")
    if len(pred[outp]) != 1 or pred[outp][0] not in neurons:
        raise UnsupportedError(f"{outp}: the output must come from one neuron population (from {pred[outp]})")
    out_pop = pred[outp][0]
    if any(s in weights for s in succ[out_pop]):
        w = next(s for s in succ[out_pop] if s in weights)
        raise UnsupportedError(f"{out_pop}: Xylo's output neurons cannot be recurrent or feed other neurons ({w})")
    in_targets = sorted({succ[w][0] for w in succ[inp]})
    if not in_targets:
        raise UnsupportedError(f"{inp}: the input reaches no neuron")
    if in_targets == [out_pop]:
        raise UnsupportedError(f"{out_pop}: Xylo needs a hidden population between the input and the output "
                               "neurons (at least two neuron layers)")
    if len(in_targets) > 1:
        raise UnsupportedError(f"{in_targets[1]}: Xylo's input weights feed one hidden population "
                               f"(here {', '.join(in_targets)})")
    if out_pop in in_targets:
        raise UnsupportedError(f"{out_pop}: the input cannot reach the output neurons directly on Xylo")
    ien = in_targets[0]
    oens = [pred[w][0] for w in pred[out_pop]]
    if inp in oens:
        raise UnsupportedError(f"{out_pop}: the input cannot reach the output neurons directly on Xylo")
    if chip != "xylo-audio2" and len(set(oens)) > 1:
        raise UnsupportedError(f"{out_pop}: on {chip} one hidden population feeds the output neurons "
                               f"(output expansion; here {', '.join(sorted(set(oens)))})")
    hidden = [ien] + [n for n in order if n in neurons and n not in (ien, out_pop) and n not in oens] + \
        [n for n in order if n in oens and n != ien]
    params = {n: _neuron_params(n, neurons[n], dt) for n in hidden + [out_pop]}
    first, H = {}, 0
    for n in hidden:
        first[n], H = H, H + params[n]["size"]
    O = params[out_pop]["size"]
    oen_lo = min(first[n] for n in oens)
    w_in = np.zeros((n_in, H))
    w_rec = np.zeros((H, H))
    w_out = np.zeros((H, O))
    recurrent = []
    for w, node in weights.items():
        src, dst = pred[w][0], succ[w][0]
        W = _weight_matrix(w, node)
        n_src = n_in if src == inp else params[src]["size"]
        if W.shape != (params[dst]["size"], n_src):
            raise UnsupportedError(f"{w}: weight of shape {W.shape} between {src} ({n_src}) and {dst} "
                                   f"({params[dst]['size']})")
        We = (W * params[dst]["gain"][:, None]).T              # [src, dst], scaled
        if src == inp:
            w_in[:, first[dst]:first[dst] + We.shape[1]] += We
        elif dst == out_pop:
            w_out[first[src]:first[src] + We.shape[0]] += We
        else:
            w_rec[first[src]:first[src] + We.shape[0], first[dst]:first[dst] + We.shape[1]] += We
            if order.index(src) >= order.index(dst):
                recurrent.append(w)
    cat = lambda k: np.concatenate([params[n][k] for n in hidden])  # noqa: E731
    po = params[out_pop]
    n_ien = params[ien]["size"]
    fs = {"weights_in": w_in, "weights_rec": w_rec, "weights_out": w_out,
          "threshold": cat("threshold"), "threshold_out": po["threshold"],
          "dash_mem": cat("dash_mem"), "dash_mem_out": po["dash_mem"], "dash_syn": cat("dash_syn"),
          "dash_syn_2": np.zeros(H, np.int64), "dash_syn_out": po["dash_syn"],
          "bias": np.zeros(H), "bias_out": np.zeros(O)}
    if chip != "xylo-audio2":       # IMU / Audio 3: input weights to the IENs only, output from the OENs only
        fs["weights_in"] = w_in[:, :n_ien, None]
        fs["weights_rec"] = w_rec[:, :, None]
        fs["weights_out"] = w_out[oen_lo:]
    spec = quantize(fs)
    spec.update(weight_shift_in=0, weight_shift_rec=0, weight_shift_out=0, dt=float(dt))
    layers = [{"name": n, "kind": params[n]["kind"], "role": "input+hidden" if n == ien else "hidden",
               "size": params[n]["size"], "first_id": first[n]} for n in hidden]
    layers.append({"name": out_pop, "kind": po["kind"], "role": "output", "size": O, "first_id": 0})
    notes = []
    if any(params[n]["kind"] == "LIF" for n in hidden + [out_pop]):
        notes.append(f"LIF populations get Xylo's fastest synapse (dash_syn = {LIF_DASH_SYN}): each input reaches "
                     "the membrane over about 2 steps")
    zero_th = int(np.sum(spec["threshold"] == 0) + np.sum(spec["threshold_out"] == 0))
    if zero_th:
        notes.append(f"{zero_th} thresholds quantized to 0 (the neuron fires whenever v >= 0)")
    return XyloArtifact(chip, spec, layers, n_in, recurrent, fs, notes)


def quantize(fs: dict) -> dict:
    """Per-channel integer quantization with the rule of rockpool's ``channel_quantize`` (8-bit weights,
    16-bit thresholds; input and recurrent weights of a hidden neuron scaled together), vectorized over neurons."""
    max_w, max_th = 2 ** (WEIGHT_BITS - 1) - 1, 2 ** (THRESHOLD_BITS - 1) - 1
    w_in, w_rec, w_out = (np.asarray(fs[k], dtype=np.float64) for k in ("weights_in", "weights_rec", "weights_out"))
    in3, rec3 = w_in.ndim == 3, w_rec.ndim == 3
    wi = w_in if in3 else w_in[:, :, None]
    wr = w_rec if rec3 else w_rec[:, :, None]
    H, n_ien = wr.shape[0], wi.shape[1]

    def scale(cols_max, th):
        th = np.asarray(th, dtype=np.float64)
        s = np.where(cols_max > 0, max_w / np.where(cols_max > 0, cols_max, 1), 1.0)
        thq = np.round(th * s)
        over = (cols_max > 0) & (np.abs(thq) > max_th)
        s = np.where(over, max_th / np.where(th != 0, th, 1), s)
        thq = np.where(over, np.round(th * s), thq)
        return s, thq

    m = np.abs(wr).max(axis=(0, 2)) if wr.size else np.zeros(H)
    m[:n_ien] = np.maximum(m[:n_ien], np.abs(wi).max(axis=(0, 2)) if wi.size else 0)
    s, th = scale(m, fs["threshold"])
    wi_q = np.round(wi * s[None, :n_ien, None])
    wr_q = np.round(wr * s[None, :, None])
    mo = np.abs(w_out).max(axis=0) if w_out.size else np.zeros(w_out.shape[1])
    so, tho = scale(mo, fs["threshold_out"])
    wo_q = np.round(w_out * so[None, :])
    out = {"weights_in": (wi_q if in3 else wi_q[:, :, 0]).astype(np.int64),
           "weights_rec": (wr_q if rec3 else wr_q[:, :, 0]).astype(np.int64),
           "weights_out": wo_q.astype(np.int64), "threshold": th.astype(np.int64), "threshold_out": tho.astype(np.int64)}
    for k in ("dash_mem", "dash_mem_out", "dash_syn", "dash_syn_2", "dash_syn_out"):
        out[k] = np.round(np.asarray(fs[k], dtype=np.float64)).astype(np.int64)
    for k, sc in (("bias", s), ("bias_out", so)):
        if fs.get(k) is not None:
            out[k] = np.round(np.asarray(fs[k], dtype=np.float64) * sc).astype(np.int64)
    return out


