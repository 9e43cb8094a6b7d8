"""Energy and activity metrics.

1. The Spikingformer paper's method (Eqs 19-20 and its ``energy_consumption_calculation`` code; facts:
   shared/reference/spikingformer.md 5.2, peers.md 4.3), reproducible from a layer table and firing rates:

   * every conv / linear layer: dense ops = kH*kW*C_in*C_out*positions (+ C_out*positions with a bias), as
     syops-counter counts them (BN folded, ignored);
   * a layer whose input is real-valued (the encoder conv, the head) is MAC: MACs = repeats * dense ops
     (the code counts the encoder on all T repeats of the static image, the head once after the mean over T);
   * a layer whose input is spikes is AC: SOPs = fr * T * dense ops, fr = firing rate of its input;
   * spiking self-attention: ACs = T * heads * N * d^2 * (min(fr_k, fr_v) + fr_q) (the Q (K^T V) order);
   * E = E_MAC * MACs + E_AC * ACs with E_MAC = 4.6 pJ, E_AC = 0.9 pJ (Horowitz 2014, 45 nm).

2. NeuroBench-style metrics under their names (peers.md 4.1), counting the attention products that
   hook-based tools miss.

3. Per-target estimates from the hardware profile's energy figures (synaptic ops, neuron updates, time
   steps, static power), every assumption listed in the result.

The layer table comes from the NIR graph (:func:`ops_from_graph`) or, for a torch model of the Spikingformer
family, from its module shapes (:func:`ops_from_model`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .analysis.annotate import annotate
from .errors import BadInputError, UnsupportedError
from .graph.core import meta
from .models import default_config, build_model

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


@dataclass
class OpLayer:
    """One synaptic layer (or one attention op) of a model."""

    name: str                       # NIR node name / module path
    kind: str                       # conv | linear | attention
    dense_ops: int                  # ops per application (per time step), bias adds included
    repeats: int                    # applications per inference (T, or 1 for a head after the mean over T)
    input: str | None = None        # spiking node whose firing rate is this layer's input rate; None: real input
    weights: int = 0                # number of weights (connections)
    zero_weights: int = 0
    out_neurons: int = 0
    heads: int = 0                  # attention only
    tokens: int = 0
    dim: int = 0
    q: str | None = None
    k: str | None = None
    v: str | None = None

    @property
    def is_mac(self) -> bool:
        return self.kind != "attention" and self.input is None


@dataclass
class ModelOps:
    """What the energy model needs about a model: its layers, its spiking nodes and T."""

    arch: str
    time_steps: int
    layers: list[OpLayer]
    neurons: dict[str, int]                     # spiking node -> neuron count
    parameters: int = 0
    footprint_bytes: int = 0
    source: str = "graph"                        # graph | model-shapes (temporary)
    time_steps_assumed: bool = False             # T is the default 4: neither the graph nor -T/the data fix it


# -- published firing rates (spikingformer.md 5.2, [log]) ----------------------------------------------------
# Per block: pre-activation LIF (attn.proj_lif) / q / k / v / attn / mlp1 / mlp2, in %.
_BLOCK_COLS = ("attn.proj_lif", "attn.q_lif", "attn.k_lif", "attn.v_lif", "attn.attn_lif", "mlp.mlp1_lif", "mlp.mlp2_lif")
_PUBLISHED = {
    "spikingformer-imagenet-8-512": {
        "tokenizer_lif": [13.87, 4.92, 3.88, 3.78],
        "tokenizer_pool": [25.83, 15.34, 13.11, 12.96],
        "blocks": [
            [17.66, 17.23, 3.63, 6.96, 29.78, 26.77, 3.29], [33.80, 11.63, 4.03, 7.17, 30.96, 33.02, 2.96],
            [34.22, 10.67, 4.44, 7.53, 31.42, 34.73, 2.56], [34.43, 8.19, 5.00, 7.69, 29.09, 34.66, 1.93],
            [34.33, 6.37, 4.33, 7.05, 20.99, 36.04, 1.42], [35.93, 7.71, 3.11, 7.32, 16.57, 35.95, 0.95],
            [34.23, 7.02, 2.42, 7.35, 10.68, 32.27, 0.57], [31.77, 9.73, 2.81, 7.96, 9.48, 29.92, 1.38],
        ],
    },
    "spikingformer-imagenet-8-768": {
        "tokenizer_lif": [10.29, 4.40, 3.44, 3.68],
        "tokenizer_pool": [19.80, 13.19, 12.08, 13.01],
        "blocks": [
            [14.75, 13.51, 2.98, 5.94, 26.52, 22.75, 2.35], [29.88, 10.50, 3.77, 6.06, 28.01, 29.20, 1.83],
            [29.06, 8.33, 3.78, 6.86, 28.58, 29.76, 1.56], [30.84, 5.63, 3.52, 6.85, 23.45, 31.47, 1.02],
            [31.19, 6.75, 3.17, 5.90, 18.02, 31.29, 0.56], [30.69, 5.02, 2.24, 4.21, 12.60, 29.97, 0.32],
            [29.21, 7.55, 3.07, 4.04, 8.09, 26.95, 0.29], [27.38, 8.32, 2.93, 7.04, 7.16, 26.97, 0.56],
        ],
    },
}
#: published totals (spikingformer.md 5.1 Table 2 and the 5.2 logs)
PUBLISHED_ENERGY_MJ = {"spikingformer-imagenet-8-512": 7.46, "spikingformer-imagenet-8-768": 13.68}
PUBLISHED_LOG = {
    "spikingformer-imagenet-8-512": {"mac_g": 0.34733, "ac_g": 6.5175, "energy_mj": 7.4635},
    "spikingformer-imagenet-8-768": {"mac_g": 0.52099, "ac_g": 12.5137, "energy_mj": 13.659},
}


def published_firing_rates(arch: str, borrow_from: str = "spikingformer-imagenet-8-512") -> tuple[dict, str]:
    """Published per-layer output firing rates (fractions) keyed by module path, and a note on where they
    come from.  Architectures with no published rates (CIFAR, DVS) borrow the rates of ``borrow_from`` by
    position (tokenizer LIF k, block i), which is said in the note."""
    cfg = default_config(arch)
    if not hasattr(cfg, "tokenizer_pools"):
        raise BadInputError(f"no published firing rates for {arch} (only the Spikingformer family has them)")
    src = arch if arch in _PUBLISHED else borrow_from
    table = _PUBLISHED[src]
    rates: dict[str, float] = {}
    naming = getattr(cfg, "tokenizer_naming", "imagenet")
    pools = list(getattr(cfg, "tokenizer_pools", []))
    n_stages = len(pools)
    for i in range(1, n_stages + 1):
        j = min(i - 1 + (4 - n_stages), 3)  # align the last stages with the published last stages
        lif = f"patch_embed.proj{i}_lif" if naming == "imagenet" else f"patch_embed.block{i}_lif"
        pool = f"patch_embed.maxpool{i}" if naming == "imagenet" else f"patch_embed.block{i}_mp"
        rates[lif] = table["tokenizer_lif"][j] / 100.0
        if pools[i - 1]:
            rates[pool] = table["tokenizer_pool"][j] / 100.0
    for b in range(cfg.depth):
        row = table["blocks"][min(b, len(table["blocks"]) - 1)]
        for col, r in zip(_BLOCK_COLS, row):
            rates[f"block.{b}.{col}"] = r / 100.0
    if src == arch:
        note = f"published firing rates of {arch} (Spikingformer energy log, spikingformer.md 5.2)"
    else:
        note = (f"no published firing rates for {arch}: rates of {src} borrowed by position "
                f"(tokenizer stage, block index); treat energy as indicative")
    return rates, note


def rate_of(rates: dict, node: str | None) -> float | None:
    """Firing rate of ``node``; NIR helper names (``x.or``) fall back to their module path and back."""
    if node is None:
        return None
    for cand in (node, node.rsplit(".", 1)[0] if node.endswith((".or", ".sum")) else None, f"{node}.or"):
        if cand is not None and cand in rates:
            return float(rates[cand])
    return None


# -- layer tables ---------------------------------------------------------------------------------------------
def ops_from_model(model_or_arch, time_steps: int | None = None) -> ModelOps:
    """TEMPORARY path (until every model goes through the NIR graph): the layer table of a Spikingformer
    built by :func:`neurodeploy.models.build_model`, from its module shapes (a forward pass on the ``meta``
    device, no memory, no compute).  Input wiring follows the Spikingformer module names."""
    import torch

    if isinstance(model_or_arch, str):
        arch = model_or_arch
        with torch.device("meta"):
            model = build_model(arch)
    else:
        model = model_or_arch
        arch = getattr(model, "arch", type(model).__name__)
    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "tokenizer_channels"):
        raise BadInputError(f"{arch}: module-shape op counting only knows the Spikingformer family; export to NIR")
    T = int(time_steps or cfg.T or 4)
    shapes: dict[str, tuple] = {}
    hooks = []
    lif_cls = type(model.block[0].attn.q_lif) if len(model.block) else None
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear, torch.nn.MaxPool2d)) or (
                lif_cls is not None and isinstance(mod, lif_cls)):
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, n=name: shapes.__setitem__(n, (tuple(i[0].shape), tuple(o.shape)))))
    side = cfg.img_size
    dev = next(model.parameters()).device
    x = (torch.zeros(1, T, cfg.in_channels, side, side, device=dev) if cfg.event_input
         else torch.zeros(1, cfg.in_channels, side, side, device=dev))
    with torch.no_grad():
        saved_T = model.T
        model.T = T
        try:
            model(x)
        finally:
            model.T = saved_T
            for h in hooks:
                h.remove()

    def per_sample(shape, leading):  # drop [T*B] or [T, B] leading dims
        return shape[leading:]

    layers: list[OpLayer] = []
    neurons: dict[str, int] = {}
    tok = model.patch_embed
    for i in range(tok.num_stages):
        names = tok.stage_names(i)
        conv_name = f"patch_embed.{names['conv']}"
        conv = getattr(tok, names["conv"])
        if i == 0:
            inp = None
        else:
            lif = f"patch_embed.{names['lif']}"
            neurons[lif] = math.prod(per_sample(shapes[lif][1], 2))
            if tok.pools[i - 1]:
                inp = f"patch_embed.{names['pool']}"
                neurons[inp] = math.prod(per_sample(shapes[inp][1], 1))
            else:
                inp = lif
        layers.append(_conv_layer(conv_name, conv, per_sample(shapes[conv_name][1], 1), T, inp))
    for b, blk in enumerate(model.block):
        p = f"block.{b}"
        for lifn in ("attn.proj_lif", "attn.q_lif", "attn.k_lif", "attn.v_lif", "attn.attn_lif", "mlp.mlp1_lif", "mlp.mlp2_lif"):
            neurons[f"{p}.{lifn}"] = math.prod(per_sample(shapes[f"{p}.{lifn}"][1], 2))
        for conv_n, inp in (("attn.q_conv", "attn.proj_lif"), ("attn.k_conv", "attn.proj_lif"),
                            ("attn.v_conv", "attn.proj_lif")):
            mod = blk.get_submodule(conv_n)
            layers.append(_conv_layer(f"{p}.{conv_n}", mod, per_sample(shapes[f"{p}.{conv_n}"][1], 1), T, f"{p}.{inp}"))
        attn = blk.attn
        N = shapes[f"{p}.attn.q_lif"][1][-1]
        layers.append(OpLayer(
            name=f"{p}.attn.attention", kind="attention", dense_ops=2 * attn.num_heads * N * (attn.dim // attn.num_heads) ** 2,
            repeats=T, input=None, heads=attn.num_heads, tokens=N, dim=attn.dim, out_neurons=attn.dim * N,
            q=f"{p}.attn.q_lif", k=f"{p}.attn.k_lif", v=f"{p}.attn.v_lif"))
        for conv_n, inp in (("attn.proj_conv", "attn.attn_lif"), ("mlp.mlp1_conv", "mlp.mlp1_lif"),
                            ("mlp.mlp2_conv", "mlp.mlp2_lif")):
            mod = blk.get_submodule(conv_n)
            layers.append(_conv_layer(f"{p}.{conv_n}", mod, per_sample(shapes[f"{p}.{conv_n}"][1], 1), T, f"{p}.{inp}"))
    head = model.head
    layers.append(OpLayer(name="head", kind="linear", dense_ops=head.in_features * head.out_features + head.out_features,
                          repeats=1, input=None, weights=head.in_features * head.out_features,
                          out_neurons=head.out_features))
    params = sum(p.numel() for p in model.parameters())
    footprint = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers())
    return ModelOps(arch=arch, time_steps=T, layers=layers, neurons=neurons, parameters=params,
                    footprint_bytes=footprint, source="model-shapes (temporary: module shapes of build_model)")


def _conv_layer(name, conv, out_shape, T, inp) -> OpLayer:
    positions = math.prod(out_shape[1:])
    k = math.prod(conv.kernel_size)
    c_in, c_out, groups = conv.in_channels, conv.out_channels, conv.groups
    dense = k * (c_in // groups) * c_out * positions + (c_out * positions if conv.bias is not None else 0)
    w = conv.weight
    zero = 0 if w.device.type == "meta" else int((w == 0).sum())
    return OpLayer(name=name, kind="conv", dense_ops=int(dense), repeats=T, input=inp,
                   weights=int(w.numel()), zero_weights=zero, out_neurons=c_out * positions)


def ops_from_graph(graph, time_steps: int | None = None) -> ModelOps:
    """Layer table from a NIR graph or its :class:`~neurodeploy.analysis.annotate.AnnotatedGraph` (docs/nir.md):
    every Conv1d/Conv2d/Affine/Linear node that is not ``routing``, with the op count, spiking source and
    attention operands the annotation found; its input rate is that of its spiking source (LIF /
    Threshold), ``None`` (MAC) for the ``encoder`` and ``readout`` roles; the attention extension node gives
    the attention term with q/k/v = the spiking sources of its stack routing nodes."""
    # every kind is named: synaptic layers and attention are counted; neurons are counted as neurons; pooling,
    # reshapes, scales, delays and non-spiking readout integrators carry no synaptic op in the paper's method
    # (its max-pool is free too); nested subgraphs are inlined by the annotation (the attention stays one node)
    ann = annotate(graph)
    T = int(time_steps or ann.time_steps or 4)
    layers: list[OpLayer] = []
    neurons: dict[str, int] = {}
    params = 0
    for name in ann.order:
        info = ann.nodes[name]
        if info.kind == "subgraph":
            raise UnsupportedError(f"node '{name}': the op count (energy) cannot handle a nested NIR subgraph")
        if info.kind == "attention":
            if info.attention is None:
                raise BadInputError(info.attention_error)
            roles, o = info.attention, info.ops
            by = {t: (roles[t] if ann.nodes[roles[t]].kind == "spiking" else ann.nodes[roles[f"{t}_route"]].spiking_source)
                  for t in "qkv"}
            layers.append(OpLayer(name=name, kind="attention", dense_ops=o.dense_ops, repeats=T, heads=o.heads,
                                  tokens=o.tokens, dim=o.dim, out_neurons=o.out_neurons, q=by["q"], k=by["k"], v=by["v"]))
            continue
        if info.kind == "spiking":
            neurons[name] = info.neurons
            continue
        o = info.ops
        if o is None:
            continue
        declared = None if info.role_inferred else info.role
        inp = None if declared == "encoder" or o.per_inference else info.spiking_source
        layers.append(OpLayer(name=name, kind=o.kind, dense_ops=o.dense_ops, repeats=1 if o.per_inference else T,
                              input=inp, weights=o.weights, zero_weights=o.zero_weights, out_neurons=o.out_neurons))
        params += o.parameters
    return ModelOps(arch=str(meta(ann.graph, "neurodeploy.arch", "nir-file")), time_steps=T, layers=layers,
                    neurons=neurons, parameters=params, footprint_bytes=4 * params, source="graph",
                    time_steps_assumed=not (time_steps or ann.time_steps))


# -- the paper's energy ------------------------------------------------------------------------------------
@dataclass
class LayerEnergy:
    name: str
    kind: str
    input_rate: float | None
    dense_ops: int
    macs: float
    acs: float
    energy_pj: float


@dataclass
class EnergyResult:
    arch: str
    time_steps: int
    e_mac_pj: float
    e_ac_pj: float
    macs: float
    acs: float
    energy_mj: float
    layers: list[LayerEnergy]
    rates_note: str = ""
    missing_rates: list[str] = field(default_factory=list)
    method: str = ("Spikingformer Eqs 19-20: E = E_MAC*MACs + E_AC*ACs; SOP = fr*T*FLOPs; encoder and head as "
                   "MAC; attention T*heads*N*d^2*(min(fr_k, fr_v) + fr_q)")

    def to_dict(self) -> dict:
        return asdict(self)


def paper_energy(ops: ModelOps, rates: dict, e_mac_pj: float = E_MAC_PJ, e_ac_pj: float = E_AC_PJ,
                 rates_note: str = "", strict: bool = True) -> EnergyResult:
    """The paper's energy for ``ops`` with per-node output firing rates ``rates`` (fractions 0..1).

    A spiking layer whose input rate is missing raises BadInputError (``strict``) or counts at rate 1."""
    T = ops.time_steps
    rows: list[LayerEnergy] = []
    missing: list[str] = []

    def need(node):
        r = rate_of(rates, node)
        if r is None:
            if strict:
                raise BadInputError(f"firing rates: no rate for node '{node}'")
            missing.append(node)
            return 1.0
        if not 0.0 <= r <= 1.0:
            raise BadInputError(f"firing rates: node '{node}' has rate {r}, expected a fraction in [0, 1]")
        return r

    for L in ops.layers:
        if L.kind == "attention":
            d = L.dim // L.heads
            fq, fk, fv = need(L.q), need(L.k), need(L.v)
            acs = T * L.heads * L.tokens * d * d * (min(fk, fv) + fq)
            rows.append(LayerEnergy(L.name, L.kind, None, L.dense_ops, 0.0, acs, acs * e_ac_pj))
        elif L.is_mac:
            macs = float(L.repeats * L.dense_ops)
            rows.append(LayerEnergy(L.name, L.kind, None, L.dense_ops, macs, 0.0, macs * e_mac_pj))
        else:
            fr = need(L.input)
            acs = fr * L.repeats * L.dense_ops
            rows.append(LayerEnergy(L.name, L.kind, fr, L.dense_ops, 0.0, acs, acs * e_ac_pj))
    macs = sum(r.macs for r in rows)
    acs = sum(r.acs for r in rows)
    return EnergyResult(arch=ops.arch, time_steps=T, e_mac_pj=e_mac_pj, e_ac_pj=e_ac_pj, macs=macs, acs=acs,
                        energy_mj=(macs * e_mac_pj + acs * e_ac_pj) * 1e-9, layers=rows, rates_note=rates_note,
                        missing_rates=missing)


# -- NeuroBench-style metrics -------------------------------------------------------------------------------
def neurobench_metrics(ops: ModelOps, rates: dict, weight_bits: int | None = None) -> dict:
    """NeuroBench metric names (peers.md 4.1), per sample summed over T, from rates (expected values):

    * ``SynapticOperations``: ``Effective_ACs`` (spiking-input layers: rate * dense; attention: the products
      that happen, heads*N*d^2*(min(fr_k, fr_v) + fr_q) per step: K^T V accumulates when k and v both fire,
      bounded by min(fr_k, fr_v); Q (K^T V) adds a row of K^T V when q fires), ``Effective_MACs`` (real-valued
      input layers, all ops), ``Dense`` (every op including attention's 2*heads*N*d^2 per step);
    * ``ActivationSparsity``: 1 - spikes / (neurons * T) over every spiking node;
    * ``MembraneUpdates``: neurons * T (an upper bound: NeuroBench counts steps where v changed; a leaky
      neuron with input changes on almost every step);
    * ``Footprint``: bytes of the stored model (float32 as NeuroBench measures it) and at ``weight_bits``;
    * ``ConnectionSparsity``: zero weights / weights over conv and linear layers.
    """
    T = ops.time_steps
    eff_ac = eff_mac = dense = 0.0
    for L in ops.layers:
        dense += L.repeats * L.dense_ops
        if L.kind == "attention":
            d = L.dim // L.heads
            fq, fk, fv = (rate_of(rates, n) or 0.0 for n in (L.q, L.k, L.v))
            eff_ac += T * L.heads * L.tokens * d * d * (min(fk, fv) + fq)
        elif L.is_mac:
            eff_mac += L.repeats * L.dense_ops
        else:
            eff_ac += (rate_of(rates, L.input) or 0.0) * L.repeats * L.dense_ops
    total_n = sum(ops.neurons.values())
    spikes = sum(n * (rate_of(rates, k) or 0.0) for k, n in ops.neurons.items())
    weights = sum(L.weights for L in ops.layers if L.kind != "attention")
    zeros = sum(L.zero_weights for L in ops.layers if L.kind != "attention")
    out = {
        "SynapticOperations": {"Effective_MACs": eff_mac, "Effective_ACs": eff_ac, "Dense": dense},
        "ActivationSparsity": (1.0 - spikes / total_n) if total_n else 0.0,
        "MembraneUpdates": float(total_n * T),
        "Footprint": int(ops.footprint_bytes),
        "ParameterCount": int(ops.parameters),
        "ConnectionSparsity": round(zeros / weights, 3) if weights else 0.0,
        "spikes_per_sample": spikes * T,
        "notes": [
            "attention products counted (hook-based tools report 0 for them)",
            "ActivationSparsity and spikes from firing rates (expected values)",
            "MembraneUpdates = neurons x T, an upper bound",
        ],
    }
    if weight_bits:
        out["Footprint_at_target_bits"] = int(math.ceil(weights * weight_bits / 8))
    return out


def attention_products(ops: ModelOps, rates: dict) -> float:
    """Expected attention products per sample (the ``Effective_ACs`` share of the spiking-attention ops:
    T*heads*N*d^2*(min(fr_k, fr_v) + fr_q) per layer); hook-based counters such as neurobench see none."""
    total = 0.0
    for L in ops.layers:
        if L.kind == "attention":
            d = L.dim // L.heads
            fq, fk, fv = (rate_of(rates, n) or 0.0 for n in (L.q, L.k, L.v))
            total += ops.time_steps * L.heads * L.tokens * d * d * (min(fk, fv) + fq)
    return total


# -- per-target estimates -----------------------------------------------------------------------------------
def target_energy(ops: ModelOps, rates: dict, profile) -> dict | None:
    """Energy per inference on ``profile`` from its energy figures, or None if it has none usable.

    synaptic ops = effective ACs + MACs (graded-spike input counted one op per MAC); neuron updates =
    neurons * T; static = static_power_w * step_time_s * T when both are given."""
    syn_pj = profile.energy("synop_pj")
    if syn_pj is None:
        return None
    nb = neurobench_metrics(ops, rates)
    so = nb["SynapticOperations"]
    synops = so["Effective_ACs"] + so["Effective_MACs"]
    nu_pj = profile.energy("neuron_update_pj")
    T = ops.time_steps
    updates = nb["MembraneUpdates"]
    e_syn = synops * syn_pj * 1e-12
    e_neu = updates * nu_pj * 1e-12 if nu_pj is not None else 0.0
    static_w, step_s = profile.energy("static_power_w"), profile.energy("step_time_s") or profile.energy("tick_s")
    e_static = static_w * step_s * T if (static_w is not None and step_s is not None) else 0.0
    q = lambda k: profile.quantity("energy", k) or {}
    assumptions = [
        f"synaptic op energy {syn_pj} pJ ({q('synop_pj').get('source', '')}; {q('synop_pj').get('confidence', '')})",
        "synaptic ops = expected effective ACs (rate x fan-out) + MACs of real-valued layers (one op each)",
        "attention products counted as synaptic ops: T*heads*N*d^2*(min(fr_k, fr_v) + fr_q)",
    ]
    if nu_pj is not None:
        assumptions.append(f"neuron update {nu_pj} pJ ({q('neuron_update_pj').get('source', '')}), every neuron every step")
    else:
        assumptions.append("no neuron-update figure in the profile: neuron updates not priced")
    if e_static:
        sq, tq = q("static_power_w"), q("step_time_s") or q("tick_s")
        assumptions.append(f"static power {static_w} W x step time {step_s} s x T={T} steps "
                           f"({sq.get('source', '')}, {sq.get('confidence', '')}; {tq.get('source', '')}, "
                           f"{tq.get('confidence', '')})")
        if any("static power included" in str(q(k).get("note", "")) for k in ("synop_pj", "neuron_update_pj")):
            assumptions.append("the per-op figures are whole-system upper bounds that already contain static power, "
                               "so synaptic + neuron + static counts static power more than once: read the total as "
                               "an upper bound and the breakdown for the parts")
    else:
        assumptions.append("static power not included (no figure)")
    assumptions.append("memory traffic, routing and I/O not priced separately")
    return {
        "target": profile.name,
        "synaptic_ops": synops,
        "neuron_updates": updates,
        "time_steps": T,
        "dynamic_uj": (e_syn + e_neu) * 1e6,
        "static_uj": e_static * 1e6,
        "energy_uj": (e_syn + e_neu + e_static) * 1e6,
        "breakdown_uj": {"synaptic": e_syn * 1e6, "neuron": e_neu * 1e6, "static": e_static * 1e6},
        "assumptions": assumptions,
    }
