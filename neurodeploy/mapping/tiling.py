"""Tiling: the tile sizes (channels, rows, width) that cut one population into pieces that each fit a core,
the fewest pieces first (the Loihi 2 compiler's power-of-two scheme, or an equal-chunk search)."""
from __future__ import annotations

import math

from .costs import CostModel
from .network import MapNetwork, MapPopulation


def over_limits(usage: dict, limits: dict) -> list[str]:
    return [r for r, lim in limits.items() if not isinstance(lim, list) and usage.get(r, 0) > lim]


def halve(b):
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


def tile_boxes(shape, tc, th, tw):
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
        o = over_limits(u, cost.limits)
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
