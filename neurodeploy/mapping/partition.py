"""Chip fit: partition a :class:`MapNetwork` onto cores, cores onto chips, chips onto the smallest system.

This module is the entry (:func:`fit`), the checks that need no mapping (operations, neuron models, delays,
precision) and the layer-per-core fit (Akida).  The tiled targets are fitted in parts: ``costs`` (how a core
is charged), ``tiling`` (tile sizes per population), ``packing`` (pieces onto shared cores and chips, summary,
inter-chip traffic), over ``boxes`` (what a box of neurons loads); the answer is a ``records.FitResult``.

Per target the profile's ``cost_model`` selects how a core is charged (``costs``):

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

from .costs import TILED_MODELS
from .network import MapNetwork
from .packing import fit_tiled, summarise
from .records import Core, FitResult, Piece, Violation


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
                    warnings=precision_warnings(net, profile) + list(net.warnings), notes=list(net.notes))
    depth = net.depth()
    res.pipeline_depth = depth
    res.latency_steps = net.time_steps + depth
    cm = profile.cost_model
    if cm in TILED_MODELS:
        fit_tiled(net, profile, TILED_MODELS[cm](profile), res, rates, pack)
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
    summarise(res, cores, ["weight_memory"], net)
