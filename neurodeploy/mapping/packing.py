"""Tiled fit: every on-chip population cut into pieces that fit a core (``tiling``), the pieces packed onto
shared cores and chips, then the summary (totals, bottleneck, per layer) and the spikes that cross chips."""
from __future__ import annotations

from .boxes import box_size, group_load, overlap, receptive_box
from .network import MapNetwork
from .records import Core, FitResult, Piece, Violation
from .tiling import halve, over_limits, tile_boxes, tile_population
from ..energy import rate_of


def fit_tiled(net, profile, cost, res: FitResult, rates, pack):
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
        for b in tile_boxes(pop.shape, *tiles):
            if exact:
                # the tiling probed a few tiles; uneven weights can overfill others: those are halved until
                # they fit (a single neuron fits: checked above)
                stack, bad_tile = [b], None
                while stack:
                    bb = stack.pop()
                    u = cost.usage(net, pop, bb)
                    over = over_limits(u, cost.limits)
                    if not over:
                        pieces.append(Piece(pop.name, pop.layer, bb, dict(u)))
                        continue
                    halves = halve(bb)
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
    summarise(res, cores, keys, net)
    _traffic(net, res, cores, rates)


def summarise(res: FitResult, cores, keys, net):
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
                total += r * box_size(b) * len(dst_chips - {ch})
        elif syn.kind == "conv":
            for bd, chd in dst_pieces:
                rb = receptive_box(syn, src.shape, bd)
                for chs, bs in src_chips.items():
                    if chs != chd:
                        total += r * overlap(rb, bs)
        else:
            share = {ch: sum(box_size(b) for b, c in chip_of[syn.src] if c == ch) for ch in src_chips}
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
