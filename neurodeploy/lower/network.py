"""The lowered network: a hardware-neutral integer description of a Loihi 2 fixed-point network.

Everything after lowering (our fixed-point engine in :mod:`neurodeploy.sim`, the Lava builder in
:mod:`neurodeploy.lava`, the netx writer, the resource mapper) reads this description and nothing else.

Records (plain dataclasses, integers only where the chip holds integers):

* :class:`Population` - a group of neurons with one neuron model.
  ``kind`` is ``input`` (external data enters here: ``input_kind`` = ``spikes`` (0/1 per step) or
  ``graded`` (an integer payload per step)), ``lif`` (Lava CUBA LIF, fixed point) or ``readout`` (a
  non-spiking integrator: a CUBA LIF whose threshold is never reached; its ``v`` is the output).
  Parameters in Lava's register units: ``du``/``dv`` 12-bit decays, ``vth`` 17-bit threshold mantissa
  (compared as ``v > vth * 2**6``), ``bias_mant`` 13-bit (scalar or one per neuron) and ``bias_exp``.
  ``bias_input``: name of an input whose per-sample values are written to ``bias_mant`` (an image as
  input bias, the "host-side encoder" input).  ``reset_interval``/``reset_offset``: Lava ``LIFReset``
  (u and v are zeroed before the dynamics of step t when ``t % interval == offset``, t counted from 1).
  ``v_init`` (int or one per neuron, default 0): the value v starts from and is reset to by that periodic
  reset (u is zeroed); a NIR neuron with ``v_reset != 0`` is lowered with v shifted by v_reset, which
  starts at ``-v_reset`` (docs/lowering.md, "Neuron models").  In Lava: ``LIF(v=v_init)``, and with a
  periodic reset :class:`neurodeploy.lava.processes.lif_reset.LIFResetInit`.
  ``relay``: a graded relay with no state (Lava ``lava.proc.graded.GradedVec`` with vth 0, fixed_pt): every
  step it sends its integer input ``a_in`` unchanged as a graded payload (24 bits); every group out of it
  is ``graded``.  The lowering uses it for exact spike counts (a channel's spikes summed over positions).
* :class:`Synapse` - one synapse group (one Lava Dense / Sparse / DelayDense / DelaySparse / Conv).
  ``kind`` = ``identity`` (the source's output goes straight into the destination's a_in: no Lava
  synapse process, no delay; used for netx input layers), ``dense`` (weights (n_out, n_in), only where
  the model has a Linear/Affine), ``sparse`` (a scipy CSR matrix (n_out, n_in) holding only the
  connections that exist: :class:`SparseWeights`; built as a Lava Sparse), ``conv`` (weights in PyTorch
  layout (C_out, C_in/groups, kH, kW), correlation as in PyTorch, zero padding; the source's flat
  neurons seen as ``src_view`` (C, H, W) (empty: the source's own shape; a token map (C, 1, N) is a
  flattened (C, H, W) map, so a conv after a Flatten sees the tokens as (C, H, W) or a Conv1d sees an image
  as (C, 1, H*W)); its (C_out, H_out, W_out) output fills the destination in C order, whatever the
  destination's shape).  ``weight_exp``, ``num_weight_bits``, ``sign_mode`` (1 mixed, 2 excitatory,
  3 inhibitory; Lava's SignMode) as Lava applies them; ``delays`` (per synapse, dense only) are the
  model's own synaptic delays; ``balance_delay`` is the delay added by lowering so that paths of
  different length meet in step (the layer-synchronous model ignores it, the pipelined one adds it).
  ``graded``: the source sends integer payloads (Lava ``num_message_bits`` = 24) instead of spikes.
  ``einsum`` (a structured group, stored as one record, never as a matrix): every destination neuron
  ``dst[dst axes]`` receives ``weight * sum over the source axes missing from dst of src[src axes]``
  (axes absent from the source are broadcast); ``einsum`` names the axes (``"hjm->hjcm"``), ``axes`` their
  sizes, both sides in C order over the flat populations; ``weights`` holds the single weight.  Built as a
  Lava Sparse / DelaySparse with one connection per (destination, summed index).  ``port`` (1 or 2) picks
  the in-port ``a_in1`` / ``a_in2`` of a ``prod`` destination.
  Population kinds ``prod`` (Lava ``ProdNeuron``: ``v = (a_in1 * a_in2) >> exp``, graded output
  ``v * (|v| > vth)``, no memory) and ``graded_vec`` (Lava ``GradedVec``: ``v = a_in``, output
  ``v * (|v| > vth)``, no memory) and ``graded_relu`` (Lava ``GradedReluVec``: ``v = a_in``, output
  ``v * (v > vth)``, no memory; the max-pool trees of :mod:`neurodeploy.lower.maxpool`) carry integer payloads
  (graded spikes); ``vth`` is compared directly, without Loihi's ``<< 6``.  :mod:`neurodeploy.lower.attention_graded` builds attention from them.
* :class:`Encoder` - a host-side input layer (real-valued input, direct encoding): computed once per
  sample on the host; its integer output is the bias mantissa of a population (``bias`` input).
* :class:`Attention` - Spikingformer's spiking self-attention as one integer op:
  per head h, ``a = weight * Q_h (K_h^T V_h)`` on the [D, N] spike maps of populations q, k, v; feeds
  population ``dst`` like a synapse group (one step of pipeline latency, plus ``balance_delays``).
  (The default ``lower_graph(..., attention="graded")`` replaces it by ProdNeuron / GradedVec populations
  and einsum groups: :mod:`neurodeploy.lower.attention_graded`.)

A network is pipelined exactly like Lava: every synapse group and attention op adds one time step.
Many samples can run back to back in one run (chained mode: :mod:`neurodeploy.lower.chain`).
``LoweredNetwork.latency`` gives each population's pipeline depth.

Their file (``.npz``) and dict forms: :mod:`neurodeploy.lower.network_file`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import BadInputError, UnsupportedError

MAX_DELAY = 62          # DelayDense/DelaySparse (netx clamps at 62; Lava checks 63)
VTH_MAX = (1 << 17) - 1
DECAY_MAX = 4095
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1
UV_MAX = (1 << 23) - 1
#: graded-spike neurons without memory (Lava ProdNeuron / GradedVec / GradedReluVec)
GRADED_KINDS = ("prod", "graded_vec", "graded_relu")


def einsum_sides(s) -> tuple:
    """(source axes, destination axes) of an ``einsum`` synapse group, e.g. ("hjm", "hjcm")."""
    src, _, dst = str(s.einsum).partition("->")
    return src.strip(), dst.strip()


def einsum_fan_in(s) -> int:
    """Connections into each destination neuron of an ``einsum`` group (product of the summed axes)."""
    src, dst = einsum_sides(s)
    return int(np.prod([int(s.axes[a]) for a in src if a not in dst], dtype=np.int64))


@dataclass
class Population:
    name: str
    shape: tuple
    kind: str = "lif"               # input | lif | readout | relay
    du: int = 4095
    dv: int = 0
    vth: int = 1
    bias_mant: Any = 0              # int or int array of the population's shape
    bias_exp: int = 0
    input_kind: str = ""            # for kind == input: spikes | graded | bias (feeds a bias_input only)
    bias_input: str = ""            # name of an input whose per-sample values go to bias_mant
    reset_interval: int = 0
    reset_offset: int = 0
    source: str = ""                # NIR node / file layer this came from
    scale: float = 0.0              # integer units (of a_in) per float unit of the source model
    exp: int = 0                    # prod / graded_vec: Lava's fixed-point base ``exp``
    v_init: Any = 0                 # lif / readout: initial v and the v a periodic reset sets (int or array)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


#: sparse matrices up to this many n_out x n_in elements may be turned into dense arrays by ``np.asarray``
#: (compatibility with readers written for dense weights); larger ones refuse
DENSE_VIEW_MAX = 1 << 22


class SparseWeights(sp.csr_matrix):
    """A ``sparse`` group's weights (or delays): a scipy CSR matrix (n_out, n_in) of int64.
    ``np.asarray`` of it gives the dense matrix only for small groups (at most :data:`DENSE_VIEW_MAX`
    elements, e.g. tests and the digits model); for larger ones it raises, so no reader densifies a
    full-size network by accident (read ``.data/.indices/.indptr`` or use scipy instead)."""

    def __array__(self, dtype=None, copy=None):
        n = int(self.shape[0]) * int(self.shape[1])
        if n > DENSE_VIEW_MAX:
            raise UnsupportedError(f"sparse weights {self.shape}: refusing a dense copy of {n} elements "
                                   "(read them as a scipy sparse matrix)")
        a = self.toarray()
        return a if dtype is None else a.astype(dtype)


def as_sparse(w, shape=None) -> SparseWeights:
    """``w`` (dense array or any scipy sparse matrix) as :class:`SparseWeights` (int64, explicit zeros
    dropped, indices sorted)."""
    if isinstance(w, SparseWeights):
        return w
    m = sp.csr_matrix(w) if sp.issparse(w) else sp.csr_matrix(np.asarray(w).reshape(shape) if shape else
                                                              np.asarray(w))
    m = SparseWeights((m.data.astype(np.int64), m.indices.astype(np.int32 if m.shape[1] < (1 << 31) else np.int64),
                       m.indptr.astype(np.int64)), shape=m.shape)
    m.eliminate_zeros()
    m.sort_indices()
    return m


def identity_csr(n: int) -> sp.csr_matrix:
    """The n x n one-to-one weight matrix (weights 1) of a relay group, sparse."""
    return sp.csr_matrix((np.ones(n, dtype=np.int64), (np.arange(n), np.arange(n))), shape=(n, n))


@dataclass
class Synapse:
    name: str
    src: str
    dst: str
    kind: str                       # identity | dense | sparse | conv
    weights: Any                    # ndarray; SparseWeights (CSR) for kind sparse
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: int = 0              # 0: let Lava infer it; else 1 mixed, 2 excitatory, 3 inhibitory
    delays: Any = None              # int array like weights (dense), SparseWeights (sparse), or None
    balance_delay: int = 0
    graded: bool = False
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    source: str = ""
    src_view: tuple = ()            # conv: (C, H, W) view of the source's flat neurons (empty: its shape)
    port: int = 0                   # destination in-port: 0 a_in; 1 / 2 a_in1 / a_in2 of a prod population
    einsum: str = ""                # kind einsum: "src axes->dst axes", e.g. "hjm->hjcm" (see GRADED_KINDS)
    axes: Any = None                # kind einsum: {axis letter: size}
    skew: int = 0                   # steps this group delivers later than delay balancing aligns it (token tiles)

    def __post_init__(self):
        if self.kind == "sparse":
            self.weights = as_sparse(self.weights)
            if self.delays is not None:
                d = self.delays
                if not sp.issparse(d) and np.ndim(d) == 0:
                    d = self.weights.copy()
                    d.data = np.full(d.data.shape, int(self.delays), dtype=np.int64)
                self.delays = as_sparse(d, self.weights.shape)

    @property
    def nnz(self) -> int:
        """Stored non-zero weights (sparse/dense: connections; conv: kernel entries)."""
        if sp.issparse(self.weights):
            return int(self.weights.count_nonzero())
        return int(np.count_nonzero(self.weights))


def conv_out_shape(src_shape, s: "Synapse") -> tuple:
    """(C_out, H_out, W_out) of a conv synapse group on its (C, H, W) source (``s.src_view`` if set)."""
    c, h, w = tuple(s.src_view) if s.src_view else src_shape
    kh, kw = np.asarray(s.weights).shape[2:4]
    ho = (h + 2 * s.padding[0] - s.dilation[0] * (kh - 1) - 1) // s.stride[0] + 1
    wo = (w + 2 * s.padding[1] - s.dilation[1] * (kw - 1) - 1) // s.stride[1] + 1
    return (int(np.asarray(s.weights).shape[0]), int(ho), int(wo))


@dataclass
class Attention:
    name: str
    q: str
    k: str
    v: str
    dst: str
    heads: int
    dim: int
    tokens: int
    weight: int = 1
    balance_delays: tuple = (0, 0, 0)   # extra delay on the q, k, v inputs
    source: str = ""


@dataclass
class Encoder:
    """Host-side encoder: the real-valued input layer, computed once per sample on the host (not per
    step, not on chip).  ``encode(x)`` gives the bias mantissas of the ``bias`` input population
    ``name``: ``round((layer(x) * row_gain + bias) * gain)`` clipped to 13 bits (``kind`` conv: a PyTorch
    conv2d with per-output-channel ``row_gain``, then, when ``pool`` is set (kernel h, w, stride h, w,
    padding h, w), PyTorch's max_pool2d of it: the max of a positive per-channel gain times the conv is
    that gain times the max, so this is the model's conv -> BN -> max-pool exactly before the rounding;
    dense: ``weights`` (n_out, n_in) already scaled)."""
    name: str
    node: str
    kind: str
    weights: np.ndarray
    row_gain: np.ndarray
    bias: np.ndarray
    gain: float
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    dilation: tuple = (1, 1)
    groups: int = 1
    input_shape: tuple = ()
    pool: tuple = ()

    def macs(self, n: int) -> int:
        """Multiply-accumulates per sample for ``n`` encoded values (a pooled conv: its outputs before the pool)."""
        w = np.asarray(self.weights)
        if self.kind == "conv" and self.pool:
            hw = [(h + 2 * p - d * (k - 1) - 1) // s + 1 for h, k, s, p, d in
                  zip(self.input_shape[1:], w.shape[2:], self.stride, self.padding, self.dilation)]
            n = w.shape[0] * hw[0] * hw[1]
        return int(np.prod(w.shape[1:]) * n)

    def encode(self, x, device="cpu"):
        import torch
        import torch.nn.functional as F
        x = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x, dtype=torch.float64, device=device)
        x = x.reshape((x.shape[0],) + tuple(self.input_shape))
        if self.kind == "conv":
            w = torch.as_tensor(self.weights, device=device) * torch.as_tensor(self.row_gain, device=device)[:, None, None, None]
            y = F.conv2d(x, w, stride=tuple(self.stride), padding=tuple(self.padding),
                         dilation=tuple(self.dilation), groups=int(self.groups))
            if self.pool:
                k, s, p = (tuple(int(v) for v in self.pool[i:i + 2]) for i in (0, 2, 4))
                y = F.max_pool2d(y, k, s, p)
            y = y.reshape(x.shape[0], -1)
        else:
            y = x.reshape(x.shape[0], -1) @ torch.as_tensor(self.weights, device=device).T
        y = (y + torch.as_tensor(self.bias, device=device)) * float(self.gain)
        return torch.clamp(torch.round(y), BIAS_MANT_MIN, BIAS_MANT_MAX).to(torch.int64)


@dataclass
class LoweredNetwork:
    populations: list = field(default_factory=list)
    synapses: list = field(default_factory=list)
    attention: list = field(default_factory=list)
    encoders: list = field(default_factory=list)
    outputs: list = field(default_factory=list)      # population names read as outputs
    metadata: dict = field(default_factory=dict)

    # -- lookup ------------------------------------------------------------------------------
    def pop(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise BadInputError(f"lowered network: no population named '{name}'")

    @property
    def inputs(self) -> list:
        return [p for p in self.populations if p.kind == "input"]

    def incoming(self, name: str) -> list:
        return [s for s in self.synapses if s.dst == name] + [a for a in self.attention if a.dst == name]

    # -- structure ---------------------------------------------------------------------------
    def validate(self) -> None:
        names = [p.name for p in self.populations]
        if len(set(names)) != len(names):
            raise BadInputError("lowered network: duplicate population names")
        byname = {p.name: p for p in self.populations}
        for p in self.populations:
            if p.kind not in ("input", "lif", "readout", "relay") + GRADED_KINDS:
                raise BadInputError(f"population '{p.name}': unknown kind '{p.kind}'")
            if p.kind in GRADED_KINDS:
                if not (0 <= int(p.vth) <= UV_MAX and 0 <= int(p.exp) < 24):
                    raise UnsupportedError(f"population '{p.name}': graded vth/exp outside 24 bits")
                continue
            if p.kind == "relay":
                continue
            if p.kind == "input":
                if p.input_kind not in ("spikes", "graded", "bias"):
                    raise BadInputError(f"input '{p.name}': input_kind must be spikes, graded or bias")
                continue
            # du = -1 (netx: iDecay 0, no current decay) and dv = 4096 (netx: vDecay 4096) are what
            # Lava computes with; the hardware registers hold du + 1 and dv.
            if not (-1 <= p.du <= DECAY_MAX and 0 <= p.dv <= DECAY_MAX + 1):
                raise UnsupportedError(f"population '{p.name}': du/dv outside the 12-bit decay registers")
            if not (0 <= p.vth <= VTH_MAX + 1):
                raise UnsupportedError(f"population '{p.name}': vth {p.vth} outside 17 bits")
            bm = np.asarray(p.bias_mant)
            if bm.size and (bm.min() < BIAS_MANT_MIN or bm.max() > BIAS_MANT_MAX) and not p.bias_input:
                raise UnsupportedError(f"population '{p.name}': bias mantissa outside 13 bits")
            vi = np.asarray(p.v_init)
            if vi.size and (np.abs(vi).max() > UV_MAX or (vi.size > 1 and vi.size != p.size)):
                raise UnsupportedError(f"population '{p.name}': v_init outside 24 bits or not one per neuron")
            if p.bias_input and p.bias_input not in byname:
                raise BadInputError(f"population '{p.name}': bias_input '{p.bias_input}' is not a population")
        for s in self.synapses:
            for end in (s.src, s.dst):
                if end not in byname:
                    raise BadInputError(f"synapse '{s.name}': unknown population '{end}'")
            if byname[s.dst].kind == "input":
                raise BadInputError(f"synapse '{s.name}': targets input population '{s.dst}'")
            if byname[s.src].kind == "relay" and not s.graded:
                raise BadInputError(f"synapse '{s.name}': groups out of relay '{s.src}' carry graded payloads "
                                    "(graded must be set)")
            n_in, n_out = byname[s.src].size, byname[s.dst].size
            w = s.weights if sp.issparse(s.weights) else np.asarray(s.weights)
            if s.kind == "sparse" and not sp.issparse(s.weights):
                raise BadInputError(f"synapse '{s.name}': sparse weights must be a sparse matrix")
            if s.kind == "identity":
                if n_in != n_out or s.delays is not None or s.balance_delay:
                    raise BadInputError(f"synapse '{s.name}': identity needs equal sizes and no delay")
            elif s.kind in ("dense", "sparse"):
                if w.shape != (n_out, n_in):
                    raise BadInputError(f"synapse '{s.name}': weights {w.shape}, expected {(n_out, n_in)}")
            elif s.kind == "einsum":
                self._validate_einsum(s, n_in, n_out)
            elif s.kind == "conv":
                view = tuple(s.src_view) if s.src_view else tuple(byname[s.src].shape)
                if w.ndim != 4 or len(view) != 3:
                    raise BadInputError(f"synapse '{s.name}': conv needs 4-d weights and a (C, H, W) source")
                if int(np.prod(view)) != n_in:
                    raise BadInputError(f"synapse '{s.name}': source view {view} does not match population "
                                        f"'{s.src}' ({n_in} neurons)")
                if s.weight_exp != 0:
                    raise UnsupportedError(f"synapse '{s.name}': Lava's Conv ignores weight_exp; it must be 0")
                if int(np.prod(conv_out_shape(byname[s.src].shape, s))) != n_out:
                    raise BadInputError(f"synapse '{s.name}': conv output {conv_out_shape(byname[s.src].shape, s)} "
                                        f"does not fill population '{s.dst}' ({n_out} neurons)")
            else:
                raise BadInputError(f"synapse '{s.name}': unknown kind '{s.kind}'")
            need_port = byname[s.dst].kind == "prod"
            if (s.port in (1, 2)) != need_port or s.port not in (0, 1, 2):
                raise BadInputError(f"synapse '{s.name}': port {s.port} (1 or 2 exactly for a prod destination)")
            if byname[s.src].kind in GRADED_KINDS and not s.graded:
                raise BadInputError(f"synapse '{s.name}': source '{s.src}' sends graded spikes; set graded")
            if s.delays is not None:
                if s.kind in ("conv", "einsum"):
                    raise UnsupportedError(f"synapse '{s.name}': per-synapse delays on a conv")
                d = s.delays.data if sp.issparse(s.delays) else np.asarray(s.delays)
                if d.size and d.min() < 0:
                    raise BadInputError(f"synapse '{s.name}': negative delay")
            if self.max_delay(s) > MAX_DELAY:
                raise UnsupportedError(
                    f"synapse '{s.name}' ({s.source or s.name}): delay {self.max_delay(s)} exceeds the "
                    f"Loihi 2 maximum of {MAX_DELAY} steps")
        for a in self.attention:
            for end in (a.q, a.k, a.v, a.dst):
                if end not in byname:
                    raise BadInputError(f"attention '{a.name}': unknown population '{end}'")
            if max(a.balance_delays) > MAX_DELAY:
                raise UnsupportedError(f"attention '{a.name}': delay exceeds {MAX_DELAY}")

    @staticmethod
    def _validate_einsum(s: Synapse, n_in: int, n_out: int) -> None:
        src, dst = einsum_sides(s)
        axes = s.axes if isinstance(s.axes, dict) else {}
        if (not src or not dst or len(set(src)) != len(src) or len(set(dst)) != len(dst)
                or any(a not in axes or int(axes[a]) < 1 for a in src + dst)):
            raise BadInputError(f"synapse '{s.name}': einsum '{s.einsum}' with axes {s.axes} is not valid")
        if int(np.prod([int(axes[a]) for a in src])) != n_in or int(np.prod([int(axes[a]) for a in dst])) != n_out:
            raise BadInputError(f"synapse '{s.name}': einsum '{s.einsum}' axes {axes} do not match the "
                                f"population sizes {n_in} -> {n_out}")
        if np.asarray(s.weights).size != 1:
            raise BadInputError(f"synapse '{s.name}': an einsum group holds exactly one weight")

    @staticmethod
    def max_delay(s: Synapse) -> int:
        return _max_delay(s.delays) + int(s.balance_delay)

    def topological_order(self) -> list:
        """Population names, every population after the sources of its zero-delay inputs."""
        deps = {p.name: set() for p in self.populations}
        for s in self.synapses:
            if s.kind == "identity" or s.delays is None or _min_delay(s.delays) == 0:
                deps[s.dst].add(s.src)
        for a in self.attention:
            deps[a.dst].update((a.q, a.k, a.v))
        order, done = [], set()
        pending = [p.name for p in self.populations]
        while pending:
            progressed = False
            for n in list(pending):
                if deps[n] - {n} <= done:
                    order.append(n)
                    done.add(n)
                    pending.remove(n)
                    progressed = True
            if not progressed:
                raise UnsupportedError(
                    f"lowered network: zero-delay cycle through populations {sorted(pending)}")
        return order

    def latency(self) -> dict:
        """Pipeline depth of each population (inputs 0; each synapse hop +1, + its balance delay, less its
        skew: a token tile's data arrives ``skew`` steps after the aligned step).  Raises if the incoming paths
        of a population disagree (the network is not balanced)."""
        lat = {}
        for name in self.topological_order():
            inc = self.incoming(name)
            if self.pop(name).kind == "input" or not inc:
                lat[name] = 0
                continue
            arrivals = set()
            for c in inc:
                if isinstance(c, Synapse):
                    if c.src == name:
                        continue
                    arrivals.add(lat[c.src] + (0 if c.kind == "identity" else 1 + c.balance_delay - int(c.skew)))
                else:
                    for src, b in zip((c.q, c.k, c.v), c.balance_delays):
                        arrivals.add(lat[src] + 1 + b)
            if len(arrivals) > 1:
                raise UnsupportedError(
                    f"population '{name}': incoming paths arrive at steps {sorted(arrivals)}; "
                    "balance the delays")
            lat[name] = arrivals.pop() if arrivals else 0
        return lat

    def encode_inputs(self, x, device="cpu") -> dict:
        """Run the host-side encoders on a real input batch x [B, ...] -> ``{bias input: mantissas}``."""
        return {e.name: e.encode(x, device=device) for e in self.encoders}

    def counts(self) -> dict:
        n_neurons = sum(p.size for p in self.populations if p.kind != "input")
        n_syn = 0
        for s in self.synapses:
            if s.kind == "identity":
                continue
            if s.kind == "conv":
                # synaptic connections actually made (output size x fan-in per output)
                n_syn += self.pop(s.dst).size * int(np.prod(np.shape(s.weights)[1:]))
            elif s.kind == "einsum":
                n_syn += self.pop(s.dst).size * einsum_fan_in(s)
            else:
                n_syn += s.nnz
        return {"populations": len(self.populations), "neurons": n_neurons,
                "synapse_groups": len(self.synapses), "synapses": n_syn,
                "attention_ops": len(self.attention),
                "product_neurons": sum(p.size for p in self.populations if p.kind == "prod"),
                "graded_vec_neurons": sum(p.size for p in self.populations if p.kind == "graded_vec"),
                "input_neurons": sum(p.size for p in self.populations if p.kind == "input")}


def _min_delay(d) -> int:
    if sp.issparse(d):
        n = int(d.shape[0]) * int(d.shape[1])
        if d.nnz < n:           # a missing entry is delay 0
            return 0
        return int(d.data.min()) if d.data.size else 0
    return int(np.min(d))


def _max_delay(d) -> int:
    if d is None:
        return 0
    if sp.issparse(d):
        return int(d.data.max()) if d.data.size else 0
    return int(np.max(d)) if np.size(d) else 0
