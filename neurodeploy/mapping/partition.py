"""Chip fit: partition a :class:`MapNetwork` onto cores, cores onto chips, chips onto the smallest system.

Per target the profile's ``cost_model`` selects how a core is charged:

* ``loihi2``  - neurons, neuron groups, input axons, SynMem units, fitted layer by layer on the Loihi 2
  compiler's per-core tables (``mapping.calibration``): dense ceil(n / 4) units per input axon; conv kernels
  stored once per core as one list per (input channel, tap); tiles of C / 2^k channels, ceil(H / 2^j) rows and
  power-of-two x widths, the fewest cores first, overflowing layers split by the overflow ratio; one layer
  per core.
* ``loihi1``  - compartments, input axons, output axons, synapse bits as nengo-loihi counts them (groups of
  64 synapses per axon, n*(weight_bits + index_bits) + 10 header bits rounded up to 64 bits); no conv
  weight sharing; one block per core.
* ``spinnaker2`` - neurons and synapse bytes per PE (every synapse stored), populations packed.
* ``crossbar`` (TrueNorth) - 256 neurons x 256 axons per core; a neuron's fan-in must fit one core.
* ``akida`` - weight memory per NPU, whole NPUs per layer.

Targets that cannot run the model get a verdict naming the rule and the layer (never an exception).
Speck (``dynapcnn``) and Xylo (``xylo``) are fitted from their lowered networks, one fit per chip
(:mod:`neurodeploy.mapping.speck`, :mod:`neurodeploy.mapping.xylo`); here they get an ``unmapped`` verdict.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp

from .network import MapNetwork, MapPopulation, MapSynapses
from ..energy import rate_of

Box = tuple  # (c0, c1, h0, h1, w0, w1)


@dataclass
class Violation:
    rule: str          # operation | neuron_model | limit | precision | delay | system | layers
    layer: str
    message: str


@dataclass
class Piece:
    population: str
    layer: str
    box: Box
    usage: dict

    @property
    def neurons(self) -> int:
        c0, c1, h0, h1, w0, w1 = self.box
        return (c1 - c0) * (h1 - h0) * (w1 - w0)


@dataclass
class Core:
    index: int
    chip: int
    pieces: list
    usage: dict


@dataclass
class FitResult:
    target: str
    title: str
    fits: bool
    violations: list
    warnings: list
    cores: list = field(default_factory=list)
    n_cores: int = 0
    n_chips: int = 0
    system: str | None = None
    system_chips: int = 0
    limits: dict = field(default_factory=dict)          # resource -> per-core limit
    totals: dict = field(default_factory=dict)          # resource -> used over all cores
    per_layer: list = field(default_factory=list)       # {layer, cores, neurons, resources...}
    bottleneck: dict | None = None
    latency_steps: int = 0
    pipeline_depth: int = 0
    interchip_spikes_per_step: float = 0.0
    interchip_note: str = ""
    notes: list = field(default_factory=list)

    def to_dict(self, max_cores: int = 200) -> dict:
        d = asdict(self)
        d["cores"] = [{"index": c.index, "chip": c.chip, "usage": c.usage,
                       "pieces": [{"population": p.population, "layer": p.layer, "neurons": p.neurons} for p in c.pieces]}
                      for c in self.cores[:max_cores]]
        d["cores_listed"] = min(len(self.cores), max_cores)
        d["violations"] = [asdict(v) for v in self.violations]
        return d


# -- geometry -----------------------------------------------------------------------------------------------
def _size(box: Box) -> int:
    c0, c1, h0, h1, w0, w1 = box
    return (c1 - c0) * (h1 - h0) * (w1 - w0)


def receptive_box(syn: MapSynapses, src_shape: tuple, box: Box) -> Box:
    """Source neurons a dst box of a conv group reads (clipped to the source)."""
    if syn.dst_view:  # conv output (C, H, W) flattened into tokens (C, 1, H*W): token range -> rows
        Wv = syn.dst_view[2]
        r0, r1 = box[4] // Wv, -(-box[5] // Wv)
        cols = (box[4] % Wv, (box[5] - 1) % Wv + 1) if r1 - r0 == 1 else (0, Wv)
        box = (box[0], box[1], r0, r1, cols[0], cols[1])
    c0, c1, h0, h1, w0, w1 = box
    C, H, W = src_shape
    kh, kw = syn.kernel
    sh, sw = syn.stride
    ph, pw = syn.padding
    ha, hb = max(0, h0 * sh - ph), min(H, (h1 - 1) * sh - ph + kh)
    wa, wb = max(0, w0 * sw - pw), min(W, (w1 - 1) * sw - pw + kw)
    if syn.groups > 1:
        cpg_out = max(1, _dst_c(syn) // syn.groups)
        cpg_in = C // syn.groups
        ca, cb = (c0 // cpg_out) * cpg_in, ((c1 - 1) // cpg_out + 1) * cpg_in
    else:
        ca, cb = 0, C
    return (ca, cb, ha, max(ha, hb), wa, max(wa, wb))


def _dst_c(syn):
    return getattr(syn, "_dst_c", 0) or syn.groups


def _flat_rows(shape: tuple, box: Box) -> np.ndarray:
    C, H, W = shape
    c0, c1, h0, h1, w0, w1 = box
    c, h, w = np.meshgrid(np.arange(c0, c1), np.arange(h0, h1), np.arange(w0, w1), indexing="ij")
    return (c * H * W + h * W + w).ravel()


def group_load(net: MapNetwork, syn: MapSynapses, dst: MapPopulation, box: Box) -> tuple[int, int, list]:
    """(input axons, synapses, synapses per axon list or None) of group ``syn`` into ``box`` of ``dst``."""
    src = net.pop(syn.src)
    n = _size(box)
    if syn.kind == "dense":
        if syn.weights is not None:
            rows = _flat_rows(dst.shape, box)
            if sp.issparse(syn.weights):   # a lowered sparse group: count its stored connections per axon
                w = sp.csr_matrix(syn.weights)[rows]
                w.eliminate_zeros()
                per_axon = np.bincount(w.indices, minlength=w.shape[1])
            else:
                w = np.asarray(syn.weights)
                w = w.reshape(w.shape[0], -1)[rows]
                per_axon = np.count_nonzero(w, axis=0)
            per_axon = per_axon[per_axon > 0]
            return int(per_axon.size), int(per_axon.sum()), per_axon
        return src.size, src.size * n, None
    if syn.kind == "conv":
        rb = receptive_box(syn, src.shape, box)
        axons = _size(rb)
        k = syn.kernel[0] * syn.kernel[1] * (src.shape[0] // max(1, syn.groups))
        return axons, n * k, None
    # structured (attention products)
    synapses = n * syn.fan_in
    axons = min(src.size, math.ceil(synapses / max(1, syn.targets_per_axon)))
    return axons, synapses, None


# -- cost models --------------------------------------------------------------------------------------------
class CostModel:
    resources: tuple = ()
    tiling = "flat"

    def __init__(self, profile):
        self.profile = profile
        self.limits = {r: profile.core_limit(r) for r in self.resources if profile.core_limit(r) is not None}

    def usage(self, net: MapNetwork, pop: MapPopulation, box: Box) -> dict:
        raise NotImplementedError


class Loihi2Cost(CostModel):
    """The Loihi 2 compiler's per-core accounting, fitted on its tables (hardware_profiles/loihi2.toml
    [synapse_accounting]; tests/data/loihi2_compiler_tables.json)."""
    resources = ("neurons", "neuron_groups", "input_axons", "synapse_memory")

    def __init__(self, profile):
        super().__init__(profile)
        acc = lambda k, d: float(profile.value("synapse_accounting", k, d))
        self.s_dense = acc("dense_synapses_per_unit", 4)
        self.header = acc("axon_header_units", 0)
        self.s_graded = acc("graded_synapses_per_unit", self.s_dense)
        self.conv_list = acc("conv_list_units", 0)
        self.conv_wpu = acc("conv_weights_per_unit", acc("conv_synapses_per_unit", 4))
        self.conv_axons = profile.value("synapse_accounting", "conv_input_axons", None)
        self.tiling = profile.tiling
        # neuron slots per neuron of each graded kind (a core holds core.neurons LIF neurons, fewer of these)
        full = float(profile.core_limit("neurons", 4095))
        self.slots = {"product": max(1, round(full / float(profile.core_limit("product_neurons", full)))),
                      "accumulator": max(1, round(full / float(profile.core_limit("graded_vec_neurons", full))))}

    def conv_units(self, syn: MapSynapses, c_in: int, box: Box) -> int:
        """SynMem of a conv group's kernel slice on a core with output channels box[0]:box[1]: one list per
        (input channel of a group, kernel tap), each conv_list_units + its weights / conv_weights_per_unit."""
        c_box = box[1] - box[0]
        taps = syn.kernel[0] * syn.kernel[1]
        cin_g = c_in // max(1, syn.groups)
        if syn.groups > 1:
            cpg_out = max(1, _dst_c(syn) // syn.groups)
            n_groups = (box[1] - 1) // cpg_out - box[0] // cpg_out + 1
            per_list = min(c_box, cpg_out)
        else:
            n_groups, per_list = 1, c_box
        lists = n_groups * cin_g * taps
        return math.ceil(lists * (self.conv_list + per_list / self.conv_wpu))

    def usage(self, net, pop, box):
        n = _size(box)
        axons = units = syn_total = 0
        for syn in net.incoming(pop.name):
            if syn.kind == "conv":
                src = net.pop(syn.src)
                a, s, _ = group_load(net, syn, pop, box)
                if self.conv_axons is not None:
                    a = min(a, int(self.conv_axons))   # population axons (the compiler's AxonIn 1-2)
                axons += a
                syn_total += s
                units += self.conv_units(syn, src.shape[0], box) + int(math.ceil(a * self.header))
                continue
            a, s, per_axon = group_load(net, syn, pop, box)
            axons += a
            syn_total += s
            if syn.kind == "dense":
                if per_axon is not None:
                    units += int(np.ceil(per_axon / self.s_dense).sum())
                else:
                    units += a * math.ceil(n / self.s_dense)
            else:
                per_unit = self.s_graded if syn.graded else self.s_dense
                units += a * math.ceil((s / max(1, a)) / per_unit)
            units += int(math.ceil(a * self.header))
        slots = math.ceil(n * self.slots.get(pop.kind, 1) - 1e-9)
        return {"neurons": slots, "neuron_groups": 1, "input_axons": axons, "synapse_memory": units, "synapses": syn_total}


class Loihi1Cost(CostModel):
    resources = ("neurons", "input_axons", "synapse_memory")
    tiling = "flat"

    def __init__(self, profile):
        super().__init__(profile)
        acc = lambda k, d: int(profile.value("synapse_accounting", k, d))
        self.wbits, self.group, self.header, self.word = acc("weight_bits", 9), acc("group_size", 64), acc("header_bits", 10), acc("word_bits", 64)

    def _bits(self, per_axon_targets: float, n_axons: int, n: int) -> int:
        idx = 0 if n <= 1 else max(6, min(12, math.ceil(math.log2(n))))
        t = int(math.ceil(per_axon_targets))
        if t <= 0:
            return 0
        full, rest = divmod(t, self.group)
        per_group = lambda m: math.ceil((m * (self.wbits + idx) + self.header) / self.word) * self.word
        bits = full * per_group(self.group) + (per_group(rest) if rest else 0)
        return bits * n_axons

    def usage(self, net, pop, box):
        n = _size(box)
        axons = bits = syn_total = 0
        for syn in net.incoming(pop.name):
            a, s, per_axon = group_load(net, syn, pop, box)
            axons += a
            syn_total += s
            if per_axon is not None:
                bits += sum(self._bits(t, 1, n) for t in per_axon)
            else:
                bits += self._bits(s / max(1, a), a, n)
        return {"neurons": n, "input_axons": axons, "synapse_memory": bits, "synapses": syn_total}


class SpiNNaker2Cost(CostModel):
    resources = ("neurons", "synapse_memory")

    def usage(self, net, pop, box):
        b = float(self.profile.value("synapse_accounting", "bytes_per_synapse", 4))
        syn_total = sum(group_load(net, s, pop, box)[1] for s in net.incoming(pop.name))
        return {"neurons": _size(box), "synapse_memory": int(syn_total * b), "synapses": syn_total}


class CrossbarCost(CostModel):
    resources = ("neurons", "input_axons")

    def usage(self, net, pop, box):
        axons = syn_total = 0
        for s in net.incoming(pop.name):
            a, k, _ = group_load(net, s, pop, box)
            axons += a
            syn_total += k
        return {"neurons": _size(box), "input_axons": axons, "synapses": syn_total}


TILED_MODELS = {"loihi2": Loihi2Cost, "loihi1": Loihi1Cost, "spinnaker2": SpiNNaker2Cost, "crossbar": CrossbarCost}


# -- tiling -------------------------------------------------------------------------------------------------
def _over(usage: dict, limits: dict) -> list[str]:
    return [r for r, lim in limits.items() if not isinstance(lim, list) and usage.get(r, 0) > lim]


def _halve(b):
    """Box ``b`` split in two along its longest side (channels first on ties), or None for one neuron."""
    c0, c1, h0, h1, w0, w1 = b
    sides = [(c1 - c0, 0), (h1 - h0, 2), (w1 - w0, 4)]
    n, i = max(sides, key=lambda t: (t[0], -t[1]))
    if n <= 1:
        return None
    lo, hi = b[i], b[i + 1]
    mid = lo + n // 2
    first, second = list(b), list(b)
    first[i + 1], second[i] = mid, mid
    return [tuple(first), tuple(second)]


def _boxes(shape, tc, th, tw):
    C, H, W = shape
    for c0 in range(0, C, tc):
        for h0 in range(0, H, th):
            for w0 in range(0, W, tw):
                yield (c0, min(C, c0 + tc), h0, min(H, h0 + th), w0, min(W, w0 + tw))


def _probe_boxes(shape, tc, th, tw):
    """The tiles that bound a tiling's worst case: first, middle and last along each split axis."""
    C, H, W = shape
    out = set()
    for c0 in {0, ((C // tc) // 2) * tc, ((C - 1) // tc) * tc}:
        for h0 in {0, ((H // th) // 2) * th, ((H - 1) // th) * th}:
            for w0 in {0, ((W // tw) // 2) * tw, ((W - 1) // tw) * tw}:
                out.add((c0, min(C, c0 + tc), h0, min(H, h0 + th), w0, min(W, w0 + tw)))
    return sorted(out)


def _fits(cost, net, pop, tc, th, tw, cap) -> tuple[bool, list]:
    worst = []
    for b in _probe_boxes(pop.shape, tc, th, tw):
        u = cost.usage(net, pop, b)
        if cap and u["neurons"] > cap:
            return False, ["neurons"]
        o = _over(u, cost.limits)
        if o:
            return False, o
    return True, worst


def tile_population(cost: CostModel, net: MapNetwork, pop: MapPopulation, cap: int | None = None):
    """Tile sizes (tc, th, tw) for ``pop`` with the fewest tiles, or (None, resources that cannot fit one
    neuron).  ``pow2-x`` (Loihi 2): :func:`_tile_loihi2`.  Otherwise, for each channel split (equal chunks,
    fewest first) the largest spatial tile is taken: along x, else along y with unit width."""
    if cost.tiling == "pow2-x":
        return _tile_loihi2(cost, net, pop, cap)
    C, H, W = pop.shape

    def spatial(tc):
        if W > 1:
            t = _search(lambda tw: _fits(cost, net, pop, tc, H, tw, cap)[0], W)
            if t:
                return H, t
        elif _fits(cost, net, pop, tc, H, 1, cap)[0]:
            return H, 1
        if H > 1:
            t = _search(lambda th: _fits(cost, net, pop, tc, th, 1, cap)[0], H)
            if t:
                return t, 1
        return None

    n_lim = cost.limits.get("neurons") or C
    k = max(1, math.ceil(C / max(1, min(n_lim, cap or n_lim))))
    best = None
    tried = set()
    while k <= C:
        tc = math.ceil(C / k)
        chunks = math.ceil(C / tc)
        if best is not None and chunks >= best[0]:
            break
        if tc not in tried:
            tried.add(tc)
            sp = spatial(tc)
            if sp is not None:
                th, tw = sp
                count = chunks * math.ceil(H / th) * math.ceil(W / tw)
                if best is None or count < best[0]:
                    best = (count, (tc, th, tw))
                if (th, tw) == (H, W):
                    break
        k = k + 1 if k < 64 else max(k + 1, int(k * 1.25))
    if best is not None:
        return best[1], None
    if not _fits(cost, net, pop, 1, 1, 1, cap)[0]:
        return None, _fits(cost, net, pop, 1, 1, 1, cap)[1]
    tc = _search(lambda t: _fits(cost, net, pop, t, 1, 1, cap)[0], C)
    return (tc, 1, 1), None


def _halves(L: int) -> list[int]:
    """L, ceil(L/2), ceil(L/4), ..., 1 (distinct)."""
    out = [L]
    while out[-1] > 1:
        out.append(-(-out[-1] // 2))
    return out


def _pow2_upto(L: int) -> list[int]:
    """Powers of two <= L, largest first (the compiler's x widths: PilotNet 16, 4, 4, 8, 8, 16)."""
    return [1 << k for k in range(max(0, L.bit_length() - 1), -1, -1)]


def _worst_usage(cost, net, pop, tc, th, tw) -> dict:
    worst: dict = {}
    for b in _probe_boxes(pop.shape, tc, th, tw):
        for r, v in cost.usage(net, pop, b).items():
            worst[r] = max(worst.get(r, 0), v)
    return worst


def _tile_loihi2(cost, net, pop, cap=None):
    """The Loihi 2 compiler's tiling, fitted on its per-core tables (PilotNet LIF / SDNN, held out on yolo_kp):
    a tile is (channels C / 2^k, rows ceil(H / 2^j), a power-of-two x width <= W) - PilotNet's 16x66x3 ...
    16x2x64, yolo_kp's 8x28x16, 4x7x128, 8x7x64, 2x7x256.  For the current channel split the (rows, width)
    pair with the fewest cores wins; when no tile of it fits a core, the split is multiplied by the worst
    overflow ratio (the compiler's "max_ratio" iteration: PilotNet fc1 1 -> 6 -> 12 cores; rounded up to a
    power of two for a conv layer, yolo_kp 256 -> 128 and 512 -> 64 channels).  Ties: whole channels,
    then a grid with at least as many x pieces as row pieces, as balanced as possible (yolo_kp)."""
    C, H, W = pop.shape
    # channels split in powers of two where the tables show it (conv layers); elsewhere by the overflow ratio
    spatial_pop = H * W > 1 and any(s.kind == "conv" for s in net.incoming(pop.name))
    xs, ys = _pow2_upto(W), _halves(H)
    lim_n = min(cost.limits.get("neurons") or 1 << 62, cap or 1 << 62)
    slot = cost.slots.get(pop.kind, 1) if hasattr(cost, "slots") else 1
    if H * W > 1 and not spatial_pop:
        # no compiler table covers these (attention products, counts, relays over tokens): the (rows, width)
        # pair and the largest equal channel chunk that fill a core, the fewest cores overall
        best = None
        for th in ys:
            for tw in xs:
                tc_max = min(C, int(lim_n // (th * tw * slot)))
                while tc_max >= 1:
                    tc = math.ceil(C / math.ceil(C / tc_max))
                    if _fits(cost, net, pop, tc, th, tw, cap)[0]:
                        count = math.ceil(C / tc) * math.ceil(W / tw) * math.ceil(H / th)
                        if best is None or count < best[0]:
                            best = (count, (tc, th, tw))
                        break
                    tc_max //= 2
        if best is not None:
            return best[1], None
    k = 1
    while True:
        tc = math.ceil(C / k)
        best = None
        for th in ys:
            for tw in xs:
                if math.ceil(tc * th * tw * slot - 1e-9) > lim_n:
                    continue
                if not _fits(cost, net, pop, tc, th, tw, cap)[0]:
                    continue
                px, py = math.ceil(W / tw), math.ceil(H / th)
                count = math.ceil(C / tc) * px * py
                key = (count, px < py, abs(px - py))
                if best is None or key < best[0]:
                    best = (key, (tc, th, tw))
        if best is not None:
            return best[1], None
        u = _worst_usage(cost, net, pop, tc, 1, 1)
        over = {r: u.get(r, 0) / lim for r, lim in cost.limits.items() if not isinstance(lim, list) and lim}
        if cap:
            over["neurons"] = max(over.get("neurons", 0), u.get("neurons", 0) / cap)
        ratio = max(over.values(), default=0)
        if tc == 1 or ratio <= 1:
            if tc == 1:
                return None, [r for r, v in over.items() if v > 1] or ["neurons"]
            ratio = 2.0   # every 1x1 tile fits on its own but no grid does (uneven weights): split further
        step = math.ceil(ratio)
        new_k = k * step
        if spatial_pop:
            new_k = 1 << max(0, (new_k - 1).bit_length())
        k = min(C, max(k + 1, new_k))


def _search(ok, L) -> int | None:
    """Largest chunk length t = ceil(L / k) with ok(t), k (the number of chunks) minimal; None if even
    t = 1 fails.  Assumes smaller chunks never use more of a core (binary search on k)."""
    if ok(L):
        return L
    if not ok(1):
        return None
    lo, hi = 1, L  # ok(ceil(L/lo)) false, ok(ceil(L/hi)) true
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(math.ceil(L / mid)):
            hi = mid
        else:
            lo = mid
    return math.ceil(L / hi)


# -- checks that need no mapping ------------------------------------------------------------------------------
def feature_violations(net: MapNetwork, profile) -> list[Violation]:
    out: list[Violation] = []
    ops = set(profile.operations)
    no_products = "activation_product" in net.operations and "activation_product" not in ops
    for op, layers in net.operations.items():
        if op == "bias_input":
            continue
        if no_products and op == "graded_spikes" and set(layers) <= set(net.operations["activation_product"]):
            continue  # said once, with the attention
        if op not in ops:
            if op == "activation_product":
                why = profile.attention.get("how", "")
                msg = (f"operation '{op}' (spiking attention: product of two activations, Q (K^T V)) is not supported "
                       f"by {profile.name}: {why}")
            else:
                msg = f"operation '{op}' is not supported by {profile.name} (supported: {', '.join(sorted(ops))})"
            out.append(Violation("operation", layers[0], msg + (f"; also used by {len(layers) - 1} more layer(s)" if len(layers) > 1 else "")))
    models = set(profile.neuron_models)
    seen = set()
    for p in net.populations:
        if not p.on_chip or p.kind == "input" or (no_products and p.kind in ("product", "accumulator")):
            continue
        m = p.neuron_model
        if m not in models and not (m == "programmable" and "programmable" in models) and (m, p.layer) not in seen:
            if m in seen:
                continue
            seen.add(m)
            out.append(Violation("neuron_model", p.layer, f"neuron model '{m}' is not supported by {profile.name} "
                                                          f"(supported: {', '.join(profile.neuron_models)})"))
    if net.unmapped and "activation_product" in ops:
        out.append(Violation("unmapped", net.unmapped[0],
                             f"attention in {len(net.unmapped)} layer(s) is not costed from this network: {profile.name} "
                             "maps the product neurons, counts and graded synapses the lowering builds (map the "
                             "lowered network, attention='graded')"))
    dmax = profile.value("precision", "delay_max")
    for s in net.synapses:
        if s.max_delay and dmax is not None and s.max_delay > dmax:
            out.append(Violation("delay", s.layer, f"synaptic delay {s.max_delay} exceeds the {profile.name} maximum of {dmax} steps"))
    return out


def precision_warnings(net: MapNetwork, profile) -> list[str]:
    wb = profile.value("precision", "weight_bits")
    need = max((s.weight_bits for s in net.synapses), default=0)
    if wb is not None and need > wb:
        return [f"weights need {need} bits, {profile.name} stores {wb}: re-quantize (fidelity not checked for this target)"]
    return []


#: cost models whose chip is fitted from its lowered network by a module of its own
OWN_FITS = {"dynapcnn": "neurodeploy.mapping.speck", "xylo": "neurodeploy.mapping.xylo"}


# -- the mapper -----------------------------------------------------------------------------------------------
def fit(net: MapNetwork, profile, rates: dict | None = None, pack: bool | None = None) -> FitResult:
    """Chip fit of ``net`` on ``profile``; ``rates``: firing rate per node (0..1) for inter-chip traffic;
    ``pack``: pack small populations onto shared cores (default: the profile's ``mapping.pack_populations``)."""
    res = FitResult(target=profile.name, title=profile.title, fits=False, violations=feature_violations(net, profile),
                    warnings=precision_warnings(net, profile), notes=list(net.notes))
    depth = net.depth()
    res.pipeline_depth = depth
    res.latency_steps = net.time_steps + depth
    cm = profile.cost_model
    if cm in TILED_MODELS:
        _fit_tiled(net, profile, TILED_MODELS[cm](profile), res, rates, pack)
    elif cm in OWN_FITS:
        res.violations.append(Violation("unmapped", net.name, f"{profile.name}: the {cm} cost model fits the chip's "
                                                              f"lowered network ({OWN_FITS[cm]}), not the NIR graph"))
    elif cm == "akida":
        _fit_akida(net, profile, res)
    if res.n_cores and not any(v.rule == "limit" for v in res.violations):
        cpc = profile.cores_per_chip
        res.n_chips = max(1, math.ceil(res.n_cores / cpc)) if res.cores == [] else max(c.chip for c in res.cores) + 1
        fitting = [(n, c) for n, c in profile.systems if c >= res.n_chips]
        if fitting:
            res.system, res.system_chips = fitting[0]
        else:
            big = profile.systems[-1]
            res.violations.append(Violation("system", net.name, f"needs {res.n_chips} chips; the largest {profile.name} system "
                                                               f"({big[0]}) has {big[1]}"))
    res.fits = not res.violations
    return res


def _fit_tiled(net, profile, cost, res: FitResult, rates, pack):
    res.limits = dict(cost.limits)
    pieces: list[Piece] = []
    fan_in_limit = profile.core_limit("fan_in")
    for pop in net.populations:
        if not pop.on_chip:
            continue
        if fan_in_limit is not None:
            for syn in net.incoming(pop.name):
                one = (0, 1, 0, 1, 0, 1)
                _, k, _ = group_load(net, syn, pop, one)
                if k > fan_in_limit:
                    res.violations.append(Violation("limit", pop.layer, f"fan-in {k} per neuron exceeds {profile.name}'s "
                                                                          f"{fan_in_limit} (a neuron sees only its own core's axons; no split helps)"))
                    break
        tiles, bad = tile_population(cost, net, pop)
        if tiles is None:
            u = cost.usage(net, pop, (0, 1, 0, 1, 0, 1))
            detail = ", ".join(f"{r} {u.get(r)} > {cost.limits[r]}" for r in bad)
            res.violations.append(Violation("limit", pop.layer, f"one neuron of '{pop.name}' already exceeds a core of "
                                                                f"{profile.name}: {detail}; no split can meet it"))
            continue
        exact = any(syn.weights is not None for syn in net.incoming(pop.name))
        C, H, W = pop.shape
        memo: dict = {}
        for b in _boxes(pop.shape, *tiles):
            if exact:
                # the tiling probed a few tiles; uneven weights can overfill others: those are halved until
                # they fit (a single neuron fits: checked above)
                stack, bad_tile = [b], None
                while stack:
                    bb = stack.pop()
                    u = cost.usage(net, pop, bb)
                    over = _over(u, cost.limits)
                    if not over:
                        pieces.append(Piece(pop.name, pop.layer, bb, dict(u)))
                        continue
                    halves = _halve(bb)
                    if halves is None:
                        bad_tile = (bb, over, u)
                        break
                    stack += halves[::-1]
                if bad_tile is not None:
                    bb, over, u = bad_tile
                    detail = ", ".join(f"{r} {u.get(r)} > {cost.limits[r]}" for r in over)
                    res.violations.append(Violation("limit", pop.layer, f"tile {bb} of '{pop.name}' exceeds a core "
                                                                        f"of {profile.name}: {detail}"))
                    break
                continue
            else:  # uniform tiles: usage depends only on the tile's size and which borders it touches
                key = (b[1] - b[0], b[3] - b[2], b[5] - b[4], b[0] == 0, b[1] == C, b[2] == 0, b[3] == H, b[4] == 0, b[5] == W)
                u = memo.get(key)
                if u is None:
                    u = memo[key] = cost.usage(net, pop, b)
            pieces.append(Piece(pop.name, pop.layer, b, dict(u)))
    if any(v.rule == "limit" for v in res.violations):
        return
    pack = profile.pack_populations if pack is None else pack
    cores: list[Core] = []
    keys = [r for r in cost.limits if not isinstance(cost.limits[r], list)]
    if pack:
        # first fit decreasing, looking back over the last 16 opened cores (linear time on big models)
        for p in sorted(pieces, key=lambda p: -p.usage.get("neurons", 0)):
            for c in cores[-16:]:
                if all(c.usage.get(r, 0) + p.usage.get(r, 0) <= cost.limits[r] for r in keys):
                    c.pieces.append(p)
                    for r, v in p.usage.items():
                        c.usage[r] = c.usage.get(r, 0) + v
                    break
            else:
                cores.append(Core(len(cores), 0, [p], dict(p.usage)))
        order = {p.name: i for i, p in enumerate(net.populations)}
        cores.sort(key=lambda c: min(order[p.population] for p in c.pieces))
        for i, c in enumerate(cores):
            c.index = i
    else:
        cores = [Core(i, 0, [p], dict(p.usage)) for i, p in enumerate(pieces)]
    cpc = profile.cores_per_chip
    for c in cores:
        c.chip = c.index // cpc
    res.cores = cores
    res.n_cores = len(cores)
    _summarise(res, cores, keys, net)
    _traffic(net, res, cores, rates)


def _summarise(res: FitResult, cores, keys, net):
    res.totals = {r: sum(c.usage.get(r, 0) for c in cores) for r in keys + ["synapses"]}
    # bottleneck: the resource that is the fullest one on the most cores (what ran out first when tiling)
    lims = {r: res.limits[r] for r in keys if res.limits.get(r)}
    binding = {r: 0 for r in lims}
    for c in cores:
        top = max(lims, key=lambda r: c.usage.get(r, 0) / lims[r], default=None)
        if top is not None:
            binding[top] += 1
    best = None
    if lims and cores:
        r = max(lims, key=lambda r: (binding[r], max(c.usage.get(r, 0) for c in cores) / lims[r]))
        peak = max(c.usage.get(r, 0) for c in cores)
        best = {"resource": r, "binding_cores": binding[r], "peak_core_pct": 100.0 * peak / lims[r],
                "mean_pct": 100.0 * res.totals[r] / (len(cores) * lims[r])}
    res.bottleneck = best
    layers: dict[str, dict] = {}
    for c in cores:
        for p in c.pieces:
            L = layers.setdefault(p.layer, {"layer": p.layer, "cores": set(), "pieces": 0,
                                            **{r: 0 for r in keys + ["synapses"]}})
            L["cores"].add(c.index)
            L["pieces"] += 1
            for r in keys + ["synapses"]:
                L[r] += p.usage.get(r, 0)
    out = []
    for L in layers.values():
        L["chips"] = sorted({res.cores[i].chip for i in L["cores"]}) if res.cores else []
        L["cores"] = len(L["cores"])
        out.append(L)
    res.per_layer = out


def _traffic(net: MapNetwork, res: FitResult, cores, rates):
    """Spikes per time step that cross chips: per synapse group, every source neuron that feeds a piece on
    another chip sends one message per destination chip.  Dense: every source neuron of a piece, once per
    remote chip; conv: source neurons inside the destination piece's receptive field (per-chip bounding
    boxes of the source pieces, an approximation at the ends of a chip's run); attention products and
    relays: input axons times the share of the source on other chips.  Rates: the measured / given firing
    rate of the source node; graded relays and accumulators send every step (rate 1); product neurons the
    smaller rate of their two inputs."""
    if not cores or max(c.chip for c in cores) == 0:
        res.interchip_note = "single chip: no inter-chip traffic"
        return
    chip_of: dict[str, list] = {}
    for c in cores:
        for p in c.pieces:
            chip_of.setdefault(p.population, []).append((p.box, c.chip))
    bbox: dict[str, dict] = {}
    for pop, lst in chip_of.items():
        d: dict = {}
        for b, ch in lst:
            if ch in d:
                o = d[ch]
                d[ch] = (min(o[0], b[0]), max(o[1], b[1]), min(o[2], b[2]), max(o[3], b[3]), min(o[4], b[4]), max(o[5], b[5]))
            else:
                d[ch] = b
        bbox[pop] = d
    missing = set()

    def rate(pop):
        if pop.kind == "accumulator":
            return 1.0
        names = pop.rate_from or (pop.layer, pop.name)
        vals = [rate_of(rates or {}, n) for n in names]
        vals = [v for v in vals if v is not None]
        if not vals:
            missing.add(pop.layer)
            return 1.0
        return min(vals) if pop.rate_from else vals[0]

    total = 0.0
    for syn in net.synapses:
        src = net.pop(syn.src)
        if syn.src not in chip_of or syn.dst not in chip_of:
            continue
        r = rate(src)
        dst_pieces = chip_of[syn.dst]
        dst_chips = {ch for _, ch in dst_pieces}
        src_chips = bbox[syn.src]
        if len(dst_chips | set(src_chips)) <= 1:
            continue
        if syn.kind == "dense":
            for b, ch in chip_of[syn.src]:
                total += r * _size(b) * len(dst_chips - {ch})
        elif syn.kind == "conv":
            for bd, chd in dst_pieces:
                rb = receptive_box(syn, src.shape, bd)
                for chs, bs in src_chips.items():
                    if chs != chd:
                        total += r * _overlap(rb, bs)
        else:
            share = {ch: sum(_size(b) for b, c in chip_of[syn.src] if c == ch) for ch in src_chips}
            dpop = net.pop(syn.dst)
            memo: dict = {}
            for bd, chd in dst_pieces:
                key = (bd[1] - bd[0], bd[3] - bd[2], bd[5] - bd[4])
                if key not in memo:
                    memo[key] = group_load(net, syn, dpop, bd)[0]
                total += r * memo[key] * (1.0 - share.get(chd, 0) / max(1, src.size))
    res.interchip_spikes_per_step = total
    res.interchip_note = ("from firing rates (graded relays at every step)" if not missing else
                          f"no firing rate for {len(missing)} layer(s) (counted at rate 1: worst case)")


def _overlap(a: Box, b: Box) -> int:
    n = 1
    for i in (0, 2, 4):
        lo, hi = max(a[i], b[i]), min(a[i + 1], b[i + 1])
        if hi <= lo:
            return 0
        n *= hi - lo
    return n


# -- layer-per-core targets -----------------------------------------------------------------------------------
def _layers(net: MapNetwork):
    """On-chip populations that receive synapses (one hardware layer each)."""
    return [p for p in net.populations if p.on_chip and net.incoming(p.name)]


def _fit_akida(net, profile, res: FitResult):
    mem = profile.core_limit("weight_memory")
    wb = profile.value("precision", "weight_bits")
    res.limits = {"weight_memory": mem}
    cores = []
    for p in _layers(net):
        bytes_ = 0
        for s in net.incoming(p.name):
            src = net.pop(s.src)
            if s.kind == "conv":
                n_w = p.shape[0] * (src.shape[0] // max(1, s.groups)) * s.kernel[0] * s.kernel[1]
            elif s.kind == "dense":
                n_w = src.size * p.size
            else:
                n_w = p.size * s.fan_in
            bytes_ += math.ceil(n_w * wb / 8)
        k = max(1, math.ceil(bytes_ / mem))
        for j in range(k):
            u = {"weight_memory": min(mem, bytes_ - j * mem)}
            cores.append(Core(len(cores), 0, [Piece(p.name, p.layer, (0, p.shape[0], 0, p.shape[1], 0, p.shape[2]), u)], u))
    for c in cores:
        c.chip = c.index // profile.cores_per_chip
    res.cores, res.n_cores = cores, len(cores)
    _summarise(res, cores, ["weight_memory"], net)
