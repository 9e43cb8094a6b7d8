"""Spiking self-attention from Lava's own processes: product neurons and graded spikes (the default lowering).

An :class:`~neurodeploy.lower.network.Attention` op sends, per head h, ``weight * Q_h (K_h^T V_h)`` on the
binary [dh, N] head slices of Q, K, V.  No synapse multiplies two activations, but Lava's process library
has a neuron that does: ``ProdNeuron`` (``v = (a_in1 * a_in2) >> exp``, graded output), plus ``GradedVec``
(a graded relay) and Sparse / DelaySparse groups carrying graded spikes (``num_message_bits`` 24).  The op
becomes two stages of product neurons (Q, K, V of head h: channels j, c; tokens n, m):

order ``ktv`` (``Q (K^T V)``, 2*H*N*dh^2 product neurons)::

    stage 1  P1[h,j,c,m] = K[h,j,m] * V[h,c,m]        ProdNeuron, inputs: 1-weight Sparse from k and v
             C[h,j,c]    = sum_m P1[h,j,c,m]           graded Sparse (weight 1) into a GradedVec (counts)
    stage 2  P2[h,j,c,n] = Q[h,j,n] * C[h,j,c]        ProdNeuron, Q through a DelaySparse (delay +2)
             a[h,c,n]   += weight * sum_j P2[h,j,c,n]  graded Sparse (weight mantissa, weight_exp) -> LIF

order ``qkt`` (``(Q K^T) V``, 2*H*N^2*dh product neurons): stage 1 ``P1[h,n,m,j] = Q[h,j,n] K[h,j,m]``
summed over j into ``S[h,n,m]``; stage 2 ``P2[h,c,n,m] = V[h,c,m] S[h,n,m]`` summed over m (V delayed).

Both orders are exact integer identities of the same sum; per op the cheaper one is chosen (``ktv`` iff
``dh <= N``) and recorded in ``metadata["attention_graded"]``.  Every synapse group is one step (Lava
pipelining), so the attention LIF receives the value the process op delivers ``STAGE_LATENCY`` = 3 steps
later; the operand that skips stage 1 waits those 2 extra steps in its DelaySparse, and the rest of the
network is re-balanced (:func:`neurodeploy.lower.balance.balance_network`: residual paths get the
same extra delay).  The added latency is ``metadata["attention_latency_added"]``.

The connectivity is stored as ``einsum`` synapse records (one axis string and one weight each: linear in
nothing but the record count), never as matrices over the product neurons.  Values: products of 0/1
spikes with counts <= max(N, dh), sums <= |weight| * N * dh: the pass refuses an op whose sum could leave
Lava's 24-bit payloads, so integer arithmetic is exact throughout.
"""
from __future__ import annotations

import copy

import numpy as np

from ..errors import BadInputError, UnsupportedError
from . import operand_gate
from .balance import balance_network, path_latency, path_latency_of
from .fixed_point import EXCITATORY, INHIBITORY
from .network import MAX_DELAY, Attention, LoweredNetwork, Population, Synapse

#: synapse hops of the graded form minus the one of the process op (input -> P1 -> counts -> P2 -> LIF)
STAGE_LATENCY = 3
_PAYLOAD_MAX = (1 << 23) - 1


def product_neuron_count(a: Attention, order: str) -> int:
    H, N, dh = a.heads, a.tokens, a.dim // a.heads
    return 2 * H * N * dh * dh if order == "ktv" else 2 * H * N * N * dh


def choose_order(a: Attention) -> str:
    """The cheaper exact order: ``ktv`` (2 H N dh^2 product neurons) when dh <= N, else ``qkt`` (2 H N^2 dh)."""
    return "ktv" if a.dim // a.heads <= a.tokens else "qkt"


def weight_mantissa(a: Attention):
    """``weight = mant * 2**exp`` with an 8-bit mantissa (Lava's graded Sparse shifts by weight_exp)."""
    w, e = int(a.weight), 0
    while abs(w) > 255 and w % 2 == 0:
        w //= 2
        e += 1
    if abs(w) > 255 or w == 0:
        raise UnsupportedError(f"attention '{a.source or a.name}': weight {a.weight} is not a nonzero 8-bit "
                               "mantissa times a power of two")
    return w, e


def graded_parts(a: Attention, order: str):
    """``(populations, synapse groups)`` replacing op ``a`` (balance delays not set: the caller re-balances;
    the skipping operand's group carries ``STAGE_LATENCY - 1`` as a fixed model delay via ``balance_delay``
    being recomputed, so nothing is set here)."""
    H, N, D, dh = a.heads, a.tokens, a.dim, a.dim // a.heads
    src = a.source or a.name
    mant, exp = weight_mantissa(a)
    if abs(int(a.weight)) * N * dh > _PAYLOAD_MAX:
        raise UnsupportedError(f"attention '{src}': weight {a.weight} x tokens {N} x head dim {dh} can exceed "
                               "the 24-bit graded payload")
    if order == "ktv":
        axes = {"h": H, "j": dh, "c": dh, "m": N, "n": N}
        p1, cnt, p2 = ("hjcm", "hjc", "hjcn")
        ops1 = ((a.k, "hjm"), (a.v, "hcm"))     # stage-1 operands (ports 1, 2)
        skip, skip_axes = a.q, "hjn"            # the operand that waits for the counts
        out_axes = "hcn"
    elif order == "qkt":
        axes = {"h": H, "j": dh, "c": dh, "m": N, "n": N}
        p1, cnt, p2 = ("hnmj", "hnm", "hcnm")
        ops1 = ((a.q, "hjn"), (a.k, "hjm"))
        skip, skip_axes = a.v, "hcm"
        out_axes = "hcn"
    else:
        raise UnsupportedError(f"attention '{src}': unknown order '{order}' (ktv or qkt)")
    ax = {k: int(v) for k, v in axes.items()}

    def shape(letters):
        return tuple(ax[x] for x in letters)

    one = np.ones((1,), dtype=np.int64)
    n1, nc, n2 = f"{a.name}.p1", f"{a.name}.counts", f"{a.name}.p2"
    pops = [Population(n1, shape(p1), kind="prod", vth=0, source=src),
            Population(nc, shape(cnt), kind="graded_vec", vth=0, source=src),
            Population(n2, shape(p2), kind="prod", vth=0, source=src)]

    def syn(name, s, d, spec, port=0, w=one, wexp=0, graded=False, mode=EXCITATORY):
        used = {k: ax[k] for k in spec if k.isalpha()}
        return Synapse(name, s, d, "einsum", w, weight_exp=wexp, sign_mode=mode, graded=graded, port=port,
                       einsum=spec, axes=used, source=src)

    syns = [syn(f"{n1}<-in1", ops1[0][0], n1, f"{ops1[0][1]}->{p1}", port=1),
            syn(f"{n1}<-in2", ops1[1][0], n1, f"{ops1[1][1]}->{p1}", port=2),
            syn(f"{nc}<-{n1}", n1, nc, f"{p1}->{cnt}", graded=True),
            syn(f"{n2}<-in1", skip, n2, f"{skip_axes}->{p2}", port=1),
            syn(f"{n2}<-{nc}", nc, n2, f"{cnt}->{p2}", port=2, graded=True),
            syn(f"{a.dst}<-{n2}", n2, a.dst, f"{p2}->{out_axes}", w=np.array([mant], dtype=np.int64), wexp=exp,
                graded=True, mode=EXCITATORY if mant > 0 else INHIBITORY)]
    return pops, syns


# -- schedules ------------------------------------------------------------------------------------------
#: the attention schedules :func:`attention_to_graded` builds (``lower_graph(..., attention_schedule=...)``);
#: all exact.  ``parallel``: every token in parallel (2 H N dh^2 product neurons, +3 steps).  ``packed``: the
#: same parallel dataflow, but each product neuron gates one 24-bit graded word that holds ``p`` channels as
#: base-2^b digits (``packing``), unpacked by floor shifts before the attention LIF (+7 steps).  ``repacked``:
#: ``packed`` whose stage 1 carries as many digits as a count of N tokens allows (floor(23 / bit_length(N)): 3
#: at N = 64, where stage 2's wider digits allow 2), repacked into stage 2's layout by floor shifts (+10 steps),
#: where that needs fewer neurons.  ``tiled-8`` / ``tiled-4`` / ``tiled-2`` / ``serial``: one bank of product
#: neurons for G = 8, 4, 2, 1 tokens serves the N / G token tiles, T steps apart, at one sample per period
#: (:func:`tiled_parts`; docs/lowering.md, "Token tiles").
ATTENTION_SCHEDULES = ("parallel", "packed", "repacked", "tiled-8", "tiled-4", "tiled-2", "serial")
#: token-tiled schedules: G tokens per tile (``serial``: one); docs/lowering.md, "Token tiles"
TILE_TOKENS = {"tiled-8": 8, "tiled-4": 4, "tiled-2": 2, "serial": 1}
#: synapse hops of the tiled form (Q, K, V -> gates -> serializers -> P1 -> pc -> counts -> P2 -> tsum -> LIF;
#: for T > 63: ... pc -> (counts) -> count gate -> (hold) -> P2 ..., outside its two doubling sums), less the
#: process op's one; the tiles (and the doubling sums) add the rest (:func:`tiled_latency`)
TILED_HOPS = 7
#: the sample clock's LIF adds this to v per step (``bias_mant``); its threshold is (period - 1) of them
CLOCK_BIAS = 64
#: synapse hops of the packed form minus the process op's one: V -> vpack -> P1 -> counts -> P2 -> words ->
#: shift -> digits -> LIF
PACKED_LATENCY = 7
#: the repacked form adds counts1 -> cshift -> cdigits -> counts between stage 1 and stage 2
REPACKED_LATENCY = PACKED_LATENCY + 3
_WORD_BITS = 23                 # magnitude bits of a signed 24-bit graded payload (values are >= 0 here)


def _words(dh: int, b: int) -> tuple:
    """(words per head row, digits per word) for ``dh`` digits of ``b`` bits in 23-bit words."""
    g = -(-dh // max(1, _WORD_BITS // b))
    return g, -(-dh // g)           # as few digits per word as the g words need (fewer shift relays)


def _pack_shape(heads: int, tokens: int, dim: int, kj: int, repack: bool = False) -> dict:
    """The packed layout for a j-chunk of ``kj`` channels: digits of ``b`` bits (every digit, a count of
    at most N in stage 1 and a sum of at most kj * N in stage 2, stays below 2^b: no carry), ``p`` digits
    per 23-bit word, ``g`` words per head row, ``nch`` chunks, and the neuron counts of the built form.
    ``repack``: stage 1 has its own layout (``stage1_digit_bits`` b1 = bit_length(N), ``stage1_digits_per_word``
    p1, ``stage1_words`` g1), repacked into stage 2's by floor shifts (counts1 -> cshift_k -> cdigits ->
    counts)."""
    H, N, dh = int(heads), int(tokens), int(dim) // int(heads)
    b = int(kj * N).bit_length()
    g, p = _words(dh, b)
    b1 = int(N).bit_length() if repack else b
    g1, p1 = _words(dh, b1) if repack else (g, p)
    nch = dh // kj
    prod = H * dh * g1 * N + H * dh * g * N
    graded = H * g1 * N + H * dh * g + H * nch * g * N * p + H * dh * N   # vpack, counts, words + shifts, digits
    if repack:
        graded += H * dh * g1 * p1 + H * dh * dh            # counts1 and its p1 - 1 shifts, cdigits
    return {"j_chunk": kj, "digit_bits": b, "digits_per_word": p, "words": g, "chunks": nch,
            "stage1_digit_bits": b1, "stage1_digits_per_word": p1, "stage1_words": g1, "repacked": bool(repack),
            "product_neurons": prod, "graded_vec_neurons": graded}


def packing(heads: int, tokens: int, dim: int, repack: bool = False) -> dict | None:
    """The cheapest exact packing (fewest product + graded neurons over the j-chunks that divide dh and give
    at least 2 digits per word; with ``repack`` also the layouts whose stage 1 carries more digits per word
    than stage 2 and is repacked), or None when none fits a 24-bit word (N >= 2^11) or none needs fewer
    neurons than the parallel form (then the packed schedule builds the parallel form)."""
    dh = int(dim) // int(heads)
    best = None
    shapes = []
    for kj in range(1, dh + 1):
        if dh % kj:
            continue
        shapes.append(_pack_shape(heads, tokens, dim, kj))
        if repack:
            r = _pack_shape(heads, tokens, dim, kj, repack=True)
            if r["stage1_words"] < r["words"]:          # stage 1 really carries more digits per word
                shapes.append(r)
    for c in shapes:
        if c["digits_per_word"] < 2:
            continue
        if best is None or c["product_neurons"] + c["graded_vec_neurons"] < \
                best["product_neurons"] + best["graded_vec_neurons"]:
            best = c
    a = Attention("x", "q", "k", "v", "o", int(heads), int(dim), int(tokens))
    o = choose_order(a)
    par = product_neuron_count(a, o) + (dh * dh * int(heads) if o == "ktv" else int(heads) * int(tokens) ** 2)
    if best is not None and best["product_neurons"] + best["graded_vec_neurons"] >= par:
        return None                 # packing would cost more neurons than the parallel form
    return best


def schedule_cost(schedule: str, heads: int, tokens: int, dim: int, T: int | None = None) -> dict:
    """Resources of one attention op under ``schedule`` (one of :data:`ATTENTION_SCHEDULES`), computed from
    the shapes alone (equal to what :func:`attention_to_graded` builds; tested): ``product_neurons``,
    ``graded_vec_neurons`` and ``latency_added_steps`` (steps later than the one-step process op; the
    network's own added latency is the largest over a path, recorded at lowering)."""
    H, N, dh = int(heads), int(tokens), int(dim) // int(heads)
    a = Attention("x", "q", "k", "v", "o", H, int(dim), N)
    order = choose_order(a)
    par = {"schedule": "parallel", "order": order, "product_neurons": product_neuron_count(a, order),
           "graded_vec_neurons": H * dh * dh if order == "ktv" else H * N * N, "latency_added_steps": STAGE_LATENCY}
    if schedule == "parallel":
        return par
    if schedule in TILE_TOKENS:
        return dict(tiled_cost(H, N, dim, min(TILE_TOKENS[schedule], N), int(T or 0)), schedule=schedule)
    if schedule in ("packed", "repacked"):
        pk = packing(H, N, dim, repack=schedule == "repacked")
        if pk is None:      # nothing packs into a word: the packed schedule is the parallel one
            return dict(par, schedule=schedule, packed=False)
        return dict(pk, schedule=schedule, order="ktv", packed=True,
                    latency_added_steps=REPACKED_LATENCY if pk["repacked"] else PACKED_LATENCY)
    raise UnsupportedError(f"attention_schedule '{schedule}': not one of {', '.join(ATTENTION_SCHEDULES)}")


def moving_count(T: int) -> bool:
    """Whether the tiled form holds its counts in one moving sum (a GradedVec feeding itself T steps later:
    the loop's delay T - 1 within one synapse's) rather than two doubling sums and a count gate."""
    return 1 <= int(T) <= MAX_DELAY + 1


def count_window(tiles: int, T: int) -> int:
    """Steps after which a tile count leaves the moving count: (2M - 1) T, M tiles (:func:`tiled_parts`; the
    chained runs' check, :func:`neurodeploy.lower.chain.carries_tail`, reads it from ``metadata["finite_loops"]``)."""
    return (2 * int(tiles) - 1) * int(T)


def tiled_latency(tokens: int, tile: int, T: int, inhibited: bool = False) -> int:
    """Steps the tiled form of one op adds over the process op: :data:`TILED_HOPS` (one fewer when Q, K, V
    are held silent by the clock, :mod:`.operand_gate`: no AND gates), plus 2 (M - 1) T for
    M = ceil(N / G) tiles (P2 waits for the last key tile, the attention LIF for the last query tile); for
    T > 63 (no moving count: :func:`moving_count`) what the two doubling sums and the count gate add instead
    (:func:`_delay_sum`; for M a power of two: log2 M hops each)."""
    M = -(-int(tokens) // int(tile))
    if moving_count(T):
        return TILED_HOPS - bool(inhibited) + 2 * (M - 1) * int(T)
    return TILED_HOPS - bool(inhibited) + _sum_latency(M, int(T), -1) + _sum_latency(M, int(T), +1) + (M - 1) * int(T)


def _sum_latency(M: int, T: int, sign: int) -> int:
    """Steps from x to the output of :func:`_delay_sum` (the balancing pass's rule: a group with skew s arrives
    one step after its source, less s), for M copies T apart: the key counts (sign -1) wait for the last tile,
    (M - 1) T plus the hops the delays do not hide; the hold (+1) only its hops."""
    B = M.bit_length() - 1
    lat = [0]
    for i in range(B):
        lat.append(max(lat[-1] + 1, lat[-1] + 1 - sign * (1 << i) * T))
    if M == 1 << B:
        return lat[-1]
    out, off = 0, 0
    for b in range(B, -1, -1):
        if M >> b & 1:
            out = max(out, lat[b] + 1 - sign * off * T)
            off += 1 << b
    return out


def tiled_cost(heads: int, tokens: int, dim: int, tile: int, T: int, inhibited: bool = False) -> dict:
    """Neurons of one op's tiled form (:func:`tiled_parts`), from the shapes: the product bank of stage 2
    (H dh^2 G), ProdNeurons; the GradedVec tile counts, the moving count (both H dh^2) and the tile sums
    (H dh G); for T > 63 instead of the moving count a count gate (H dh^2 ProdNeurons) and the two doubling
    sums' stages (2 h of H dh^2, h = floor(log2 M), one more when M is not a power of two); the memoryless LIF gates, serializers and stage-1 bank (3 D N + 3 D G + H dh^2 G: K AND V of two
    spikes needs no product neuron; ``inhibited``: Q, K, V held silent by inhibition, :mod:`.operand_gate`,
    no 3 D N gates, one off neuron).  The shared sample clock (2 LIFs) and delay relays are not included (the network adds them
    once)."""
    H, N, D = int(heads), int(tokens), int(dim)
    dh, G = D // H, int(tile)
    M = -(-N // G)
    h = (M.bit_length() - 1) + (0 if M & (M - 1) == 0 else 1)     # populations of each doubling sum
    moving = moving_count(T)
    return {"tile_tokens": G, "tiles": M, "order": "ktv",
            "product_neurons": H * dh * dh * G + (0 if moving else H * dh * dh),
            "graded_vec_neurons": (2 if moving else 1 + 2 * h) * H * dh * dh + H * dh * G,
            "gate_neurons": (1 if inhibited else 3 * D * N) + 3 * D * G + H * dh * dh * G,
            "latency_added_steps": tiled_latency(N, G, T, inhibited)}


def full_rate_bound(heads: int, tokens: int, head_dim: int) -> int:
    """The fewest gating (product) neurons any exact schedule of one attention op can have while the rest of
    the network runs one model step per Lava step and samples follow each other at full rate
    (docs/lowering.md, "Why no micro-step clock"): 2 H N dh^2 binary products per model step, at most
    p = floor(23 / bit_length(N)) per 24-bit word.  Below it only a lower sample rate goes (the token tiles:
    :func:`tiled_parts`)."""
    H, N, dh = int(heads), int(tokens), int(head_dim)
    p = max(1, 23 // max(1, N.bit_length()))
    return -(-2 * H * N * dh * dh // p)


def _shift_weight(bits: int):
    """2**bits as an 8-bit mantissa times 2**exp (mantissa at most 128 so it stays one-signed)."""
    m = min(bits, 7)
    return 1 << m, bits - m


def _csr(rows, cols, n_dst, n_src):
    import scipy.sparse as sp
    rows, cols = np.asarray(rows).reshape(-1), np.asarray(cols).reshape(-1)
    return sp.csr_matrix((np.ones(rows.size, dtype=np.int64), (rows, cols)), shape=(n_dst, n_src))


def packed_parts(a: Attention, pk: dict):
    """``(populations, synapse groups)`` of the packed form of op ``a`` (order ktv; ``pk``: :func:`packing`).

    Q, K, V are [H, dh, N] spike maps; digits ``b`` bits, ``p`` per word, word ``w`` of a head row holds
    channels ``c = w p + i`` (i < p, c < dh) as ``2^(b i)`` multiples::

        vpack[h,w,m]    = sum_i V[h,wp+i,m] 2^(bi)              GradedVec (p excitatory Sparse groups)
        P1[h,j,w,m]     = K[h,j,m] vpack[h,w,m]                 ProdNeuron (a gate: K is 0/1)
        counts[h,j,w]   = sum_m P1 = sum_i C[h,j,wp+i] 2^(bi)   GradedVec, C = K V^T (digits <= N < 2^b)
        P2[h,x,y,w,n]   = Q[h,j,n] counts[h,j,w]                ProdNeuron, j = x kj + y (chunk x)
        words[h,x,w,n]  = sum_y P2                               digits sum_{j in x} Q C <= kj N < 2^b
        shift_k         = floor(words / 2^(bk)), k = 1..p-1      GradedVec (Sparse weight_exp -bk)
        digits[h,c,n]   = sum_x shift_i - 2^b shift_{i+1}        = sum_j Q[h,j,n] C[h,j,c]   GradedVec
        LIF a_in       += weight * digits                        (as the parallel form's out group)
    """
    H, N, D, dh = a.heads, a.tokens, a.dim, a.dim // a.heads
    b, p, g, kj, nch = pk["digit_bits"], pk["digits_per_word"], pk["words"], pk["j_chunk"], pk["chunks"]
    rp = bool(pk.get("repacked"))
    b1, p1, g1 = (pk["stage1_digit_bits"], pk["stage1_digits_per_word"], pk["stage1_words"]) if rp else (b, p, g)
    src = a.source or a.name
    mant, exp = weight_mantissa(a)
    if abs(int(a.weight)) * N * dh > _PAYLOAD_MAX:
        raise UnsupportedError(f"attention '{src}': weight {a.weight} x tokens {N} x head dim {dh} can exceed "
                               "the 24-bit graded payload")
    nm = a.name
    c1 = f"{nm}.counts1" if rp else f"{nm}.counts"          # stage 1's counts (stage 1's layout)
    pops = [Population(f"{nm}.vpack", (H, g1, N), kind="graded_vec", vth=0, source=src),
            Population(f"{nm}.p1", (H, dh, g1, N), kind="prod", vth=0, source=src),
            Population(c1, (H, dh, g1), kind="graded_vec", vth=0, source=src)]
    if rp:
        pops += [Population(f"{nm}.cshift{k}", (H, dh, g1), kind="graded_vec", vth=0, source=src) for k in range(1, p1)]
        pops += [Population(f"{nm}.cdigits", (H, dh, dh), kind="graded_vec", vth=0, source=src),
                 Population(f"{nm}.counts", (H, dh, g), kind="graded_vec", vth=0, source=src)]
    pops += [Population(f"{nm}.p2", (H, nch, kj, g, N), kind="prod", vth=0, source=src),
            Population(f"{nm}.words", (H, nch, g, N), kind="graded_vec", vth=0, source=src)]
    pops += [Population(f"{nm}.shift{k}", (H, nch, g, N), kind="graded_vec", vth=0, source=src) for k in range(1, p)]
    pops.append(Population(f"{nm}.digits", (H, dh, N), kind="graded_vec", vth=0, source=src))
    one = np.ones((1,), dtype=np.int64)
    ax = {"h": H, "j": dh, "w": g, "m": N, "n": N, "x": nch, "y": kj, "c": dh, "v": g1}

    def ein(name, s, d, spec, port=0, w=one, wexp=0, graded=False, mode=EXCITATORY):
        used = {k: ax[k] for k in spec if k.isalpha()}
        return Synapse(name, s, d, "einsum", w, weight_exp=wexp, sign_mode=mode, graded=graded, port=port,
                       einsum=spec, axes=used, source=src)

    def sparse(name, s, d, mat, w=1, wexp=0, graded=True):
        mode = EXCITATORY if w > 0 else INHIBITORY
        m = mat.multiply(int(w)).tocsr() if w != 1 else mat
        return Synapse(name, s, d, "sparse", m, weight_exp=wexp, sign_mode=mode, graded=graded, source=src)

    syns = []
    # vpack: one excitatory group per digit position i (weight 2^(b1 i) as mantissa x 2^exp), stage 1's layout
    h_, w_, m_ = np.meshgrid(np.arange(H), np.arange(g1), np.arange(N), indexing="ij")
    for i in range(p1):
        c_ = w_ * p1 + i
        ok = c_ < dh
        rows = np.ravel_multi_index((h_[ok], w_[ok], m_[ok]), (H, g1, N))
        cols = np.ravel_multi_index((h_[ok], c_[ok], m_[ok]), (H, dh, N))
        mm, ee = _shift_weight(b1 * i)
        syns.append(sparse(f"{nm}.vpack<-v.{i}", a.v, f"{nm}.vpack", _csr(rows, cols, H * g1 * N, D * N), mm, ee,
                           graded=False))
    syns += [ein(f"{nm}.p1<-in1", a.k, f"{nm}.p1", "hjm->hjvm", port=1),
             ein(f"{nm}.p1<-in2", f"{nm}.vpack", f"{nm}.p1", "hvm->hjvm", port=2, graded=True),
             ein(f"{c1}<-{nm}.p1", f"{nm}.p1", c1, "hjvm->hjv", graded=True)]
    if rp:
        # counts1[h,j,v] = sum_i C[h,j,v p1 + i] 2^(b1 i): cshift_k = floor(counts1 / 2^(b1 k)); the clean digits
        # cdigits[h,j,c] = cshift_i - 2^b1 cshift_{i+1} = C[h,j,c] (c = v p1 + i; cshift_0 = counts1); then
        # counts[h,j,w] = sum_i cdigits[h,j,w p + i] 2^(b i) in stage 2's layout (every term below 2^23)
        for k in range(1, p1):
            syns.append(ein(f"{nm}.cshift{k}<-{c1}", c1, f"{nm}.cshift{k}", "hjv->hjv", wexp=-b1 * k, graded=True))
        h_, j_, v_ = np.meshgrid(np.arange(H), np.arange(dh), np.arange(g1), indexing="ij")
        lev = [c1] + [f"{nm}.cshift{k}" for k in range(1, p1)]
        for k in range(p1):
            for sign, c_ in ((1, v_ * p1 + k), (-1, v_ * p1 + k - 1)):
                if sign < 0 and k == 0:
                    continue
                ok = (c_ >= 0) & (c_ < dh)
                rows = np.ravel_multi_index((h_[ok], j_[ok], c_[ok]), (H, dh, dh))
                cols = np.ravel_multi_index((h_[ok], j_[ok], v_[ok]), (H, dh, g1))
                mm, ee = (1, 0) if sign > 0 else _shift_weight(b1)
                syns.append(sparse(f"{nm}.cdigits<-{lev[k].rsplit('.', 1)[1]}" + (".carry" if sign < 0 else ""),
                                   lev[k], f"{nm}.cdigits", _csr(rows, cols, H * dh * dh, H * dh * g1), sign * mm, ee))
        h_, j_, w_ = np.meshgrid(np.arange(H), np.arange(dh), np.arange(g), indexing="ij")
        for i in range(p):
            c_ = w_ * p + i
            ok = c_ < dh
            rows = np.ravel_multi_index((h_[ok], j_[ok], w_[ok]), (H, dh, g))
            cols = np.ravel_multi_index((h_[ok], j_[ok], c_[ok]), (H, dh, dh))
            mm, ee = _shift_weight(b * i)
            syns.append(sparse(f"{nm}.counts<-cdigits.{i}", f"{nm}.cdigits", f"{nm}.counts",
                               _csr(rows, cols, H * dh * g, H * dh * dh), mm, ee))
    syns += [ein(f"{nm}.p2<-in1", a.q, f"{nm}.p2", "hxyn->hxywn", port=1),
             ein(f"{nm}.p2<-{nm}.counts", f"{nm}.counts", f"{nm}.p2", "hxyw->hxywn", port=2, graded=True),
             ein(f"{nm}.words<-{nm}.p2", f"{nm}.p2", f"{nm}.words", "hxywn->hxwn", graded=True)]
    for k in range(1, p):
        syns.append(ein(f"{nm}.shift{k}<-{nm}.words", f"{nm}.words", f"{nm}.shift{k}", "hxwn->hxwn",
                        wexp=-b * k, graded=True))
    # digits[h, c = w p + i, n] = sum_x shift_i[h,x,w,n] - 2^b shift_{i+1}[h,x,w,n]  (shift_0 = words)
    h_, x_, w_, n_ = np.meshgrid(np.arange(H), np.arange(nch), np.arange(g), np.arange(N), indexing="ij")
    level = [f"{nm}.words"] + [f"{nm}.shift{k}" for k in range(1, p)]
    for k in range(p):
        plus_r, plus_c, minus_r, minus_c = [], [], [], []
        c_ = w_ * p + k              # shift_k is digit k's "+" term
        ok = c_ < dh
        plus_r = np.ravel_multi_index((h_[ok], c_[ok], n_[ok]), (H, dh, N))
        plus_c = np.ravel_multi_index((h_[ok], x_[ok], w_[ok], n_[ok]), (H, nch, g, N))
        syns.append(sparse(f"{nm}.digits<-{level[k].rsplit('.', 1)[1]}", level[k], f"{nm}.digits",
                           _csr(plus_r, plus_c, H * dh * N, H * nch * g * N)))
        if k >= 1:                   # and digit k-1's "-2^b" term
            c_ = w_ * p + k - 1
            ok = c_ < dh
            minus_r = np.ravel_multi_index((h_[ok], c_[ok], n_[ok]), (H, dh, N))
            minus_c = np.ravel_multi_index((h_[ok], x_[ok], w_[ok], n_[ok]), (H, nch, g, N))
            mm, ee = _shift_weight(b)
            syns.append(sparse(f"{nm}.digits<-{level[k].rsplit('.', 1)[1]}.carry", level[k], f"{nm}.digits",
                               _csr(minus_r, minus_c, H * dh * N, H * nch * g * N), -mm, ee))
    syns.append(ein(f"{a.dst}<-{nm}.digits", f"{nm}.digits", a.dst, "hcn->hcn", w=np.array([mant], dtype=np.int64),
                    wexp=exp, graded=True, mode=EXCITATORY if mant > 0 else INHIBITORY))
    return pops, syns


def _tile_csr(rows: int, N: int, G: int, k: int):
    """One-to-one CSR (rows N, rows G): map neuron (r, kG + g) of a [rows, N] token map reads tile neuron (r, g)
    of a [rows, G] tile, for the tokens of tile ``k`` that exist (its transpose: the tile reads the map)."""
    g = np.arange(G)
    g = g[k * G + g < N]
    rr, gg = np.meshgrid(np.arange(rows), g, indexing="ij")
    return _csr(rr * N + k * G + gg, rr * G + gg, rows * N, rows * G)


def sample_clock(net: LoweredNetwork):
    """The network's sample clock (created once, shared by every tiled op): ``clock.pulse``, a LIF with no
    input that spikes at the first step of every sample period (v starts at (P - 1) x 64, adds 64 a step,
    threshold P - 1: set by the balancing pass once the period P = T + latency is known), and
    ``clock.window``, a memoryless LIF (an OR) reading it through T groups of delays 0 .. T - 1: it spikes at
    the T model steps of every sample and nowhere else (not while the pipeline fills either: delay lines
    start empty).  Its latency is 1, so, delayed like any population, it spikes exactly where a population at
    latency l + 1 is at the sample's model steps l .. l + T - 1."""
    T = int(net.metadata.get("time_steps", 0) or 0)
    if T < 1:
        raise UnsupportedError("a token-tiled attention schedule needs the number of time steps (its sample "
                               "clock spaces the tiles T steps apart): give --steps N")
    if any(p.name == "clock.pulse" for p in net.populations):
        return "clock.window"
    net.populations += [Population("clock.pulse", (1,), kind="lif", du=4095, dv=0, vth=1, bias_mant=CLOCK_BIAS,
                                   source="sample clock"),
                        _logic("clock.window", (1,), 0, "sample clock")]
    net.synapses += [Synapse(f"clock.window<-pulse.d{d}", "clock.pulse", "clock.window", "sparse", _csr([0], [0], 1, 1),
                             sign_mode=EXCITATORY, skew=d, source="sample clock") for d in range(T)]
    net.metadata = dict(net.metadata)
    net.metadata["sample_clock"] = {"pulse": "clock.pulse", "window": "clock.window", "bias": CLOCK_BIAS}
    return "clock.window"


def _logic(name: str, shape: tuple, vth: int, source: str) -> Population:
    """A memoryless LIF (du = dv = 4095: u and v keep nothing of the previous step while a_in < 64): it spikes
    in the step its input a_in exceeds ``vth`` (v = 64 a_in against vth x 64): an OR with vth 0 (binary inputs
    that are never more than one at a time where it matters), an AND of two with vth 1."""
    return Population(name, shape, kind="lif", du=4095, dv=4095, vth=vth, source=source)


def tiled_parts(a: Attention, tile: int, T: int, window: str, inhibited: bool = False):
    """``(populations, synapse groups)`` of the token-tiled form of op ``a`` (order ktv), G = ``tile`` tokens
    per tile, M = ceil(N / G) tiles, T model steps; ``window``: the sample clock's window population.

    One bank of product neurons serves every tile: tile k of model step t is in the bank at step t + k T
    (group skews k T; the balancing pass adds them to the aligned delay).  That is a one-to-one map of
    (t, k) onto the steps 0 .. M T - 1 only if Q, K, V are silent outside the sample's T steps, so they are
    gated by the clock first, then serialized (one neuron per tile slot, fed by every tile at its delay).
    ``inhibited``: Q, K, V are already silent outside their window (inhibited by the clock's ``off`` neuron:
    :mod:`.operand_gate`); the serializers read them directly and there are no gate_x::

        gate_x[h,j,n]   = X[h,j,n] AND window                  memoryless LIF, vth 1 (x = q, k, v)
        ser_x[h,j,g]    = OR_k gate_x[h,j,kG+g] delayed kT     memoryless LIF, vth 0: tile k at t + kT
        P1[h,j,c,g]     = ser_k[h,j,g] AND ser_v[h,c,g]         memoryless LIF, vth 1 (both are spikes)
        pc[h,j,c]       = sum_g P1                              GradedVec: tile k's counts at t + kT
        counts[h,j,c]   = counts delayed T + pc - pc delayed (2M-1) T   GradedVec feeding itself: a moving sum,
                                                                C = K V^T from t + (M-1) T to t + (2M-2) T
        P2[h,j,c,g]     = ser_q[h,j,g] counts[h,j,c]            ProdNeuron: Q tile k x C at t + kT (counts
                                                                read (M-1) T later)
        tsum[h,c,g]     = sum_j P2                              GradedVec
        LIF a_in       += weight x tsum (tile k delayed (M-1-k) T)  the process op's integers, later

    For T > 63 the loop's delay T - 1 exceeds a synapse's (:func:`moving_count`); then the counts are a
    doubling sum of the M tile counts (C at t + (M-1) T only), a count gate ``cgate = counts x window``
    (ProdNeuron) keeps the complete count, and a second doubling sum ``chold`` holds it for the M query tiles.
    """
    H, N, D, dh = a.heads, a.tokens, a.dim, a.dim // a.heads
    G = int(tile)
    M = -(-N // G)
    src = a.source or a.name
    mant, exp = weight_mantissa(a)
    if abs(int(a.weight)) * N * dh > _PAYLOAD_MAX:
        raise UnsupportedError(f"attention '{src}': weight {a.weight} x tokens {N} x head dim {dh} can exceed "
                               "the 24-bit graded payload")
    one = np.ones((1,), dtype=np.int64)
    n = a.name
    pops = [] if inhibited else [_logic(f"{n}.gate_{x}", (D, N), 1, src) for x in "qkv"]
    pops += [_logic(f"{n}.ser_{x}", (D, G), 0, src) for x in "qkv"]
    pops += [_logic(f"{n}.p1", (H * dh, dh, G), 1, src),         # K AND V: both are spikes
             Population(f"{n}.p2", (H * dh, dh, G), kind="prod", vth=0, source=src),
             Population(f"{n}.tsum", (H, dh, G), kind="graded_vec", vth=0, source=src)]
    ax = {"h": H, "j": dh, "c": dh, "g": G, "n": N}

    def ein(name, s, d, spec, port=0, skew=0, w=one, wexp=0, graded=True, mode=EXCITATORY):
        used = {k: ax[k] for k in spec if k.isalpha()}
        return Synapse(name, s, d, "einsum", w, weight_exp=wexp, sign_mode=mode, graded=graded, port=port,
                       einsum=spec, axes=used, skew=skew, source=src)

    def sparse(name, s, d, m, port=0, skew=0, graded=False, w=1, wexp=0, mode=EXCITATORY):
        if w != 1:
            m = m * int(w)
        return Synapse(name, s, d, "sparse", m, weight_exp=wexp, sign_mode=mode, graded=graded, port=port,
                       skew=skew, source=src)

    col = np.zeros(D * N, dtype=np.int64)
    syns = []
    for x, xs in zip("qkv", (a.q, a.k, a.v)):
        g = xs if inhibited else f"{n}.gate_{x}"
        if not inhibited:
            syns += [ein(f"{g}<-{x}", xs, g, "hjn->hjn", graded=False),
                     sparse(f"{g}<-window", window, g, _csr(np.arange(D * N), col, D * N, 1))]
        tag = f"{x}." if inhibited else "gate."
        syns += [sparse(f"{n}.ser_{x}<-{tag}t{k}", g, f"{n}.ser_{x}", _tile_csr(D, N, G, k).T.tocsr(), skew=k * T)
                 for k in range(M)]
    syns += [ein(f"{n}.p1<-ser_k", f"{n}.ser_k", f"{n}.p1", "hjg->hjcg", graded=False),
             ein(f"{n}.p1<-ser_v", f"{n}.ser_v", f"{n}.p1", "hcg->hjcg", graded=False),
             ein(f"{n}.p2<-ser_q", f"{n}.ser_q", f"{n}.p2", "hjg->hjcg", port=1, graded=False),
             ein(f"{n}.tsum<-p2", f"{n}.p2", f"{n}.tsum", "hjcg->hcg")]
    pops.append(Population(f"{n}.pc", (H * dh, dh), kind="graded_vec", vth=0, source=src))
    syns.append(ein(f"{n}.pc<-p1", f"{n}.p1", f"{n}.pc", "hjcg->hjc", graded=False))
    for k in range(M):
        syns.append(sparse(f"{a.dst}<-tsum.t{k}", f"{n}.tsum", a.dst, _tile_csr(D, N, G, k),
                           skew=-k * T, graded=True, w=mant, wexp=exp, mode=EXCITATORY if mant > 0 else INHIBITORY))
    if moving_count(T):
        # counts[t] = counts[t - T] + pc[t] - pc[t - (2M - 1) T]: one GradedVec feeding itself T steps later,
        # a moving sum of 2M - 1 tile counts T apart.  pc is silent outside its sample's M key tiles, so at
        # t + (M - 1 + k) T (k < M: P2's reads, skew -(M - 1) T) it holds exactly C = K V^T of model step t,
        # and every tile count leaves it again before the next sample (period >= (2M - 1) T)
        cnt = f"{n}.counts"
        pops.append(Population(cnt, (H * dh, dh), kind="graded_vec", vth=0, source=src))
        syns += [ein(f"{cnt}<-pc", f"{n}.pc", cnt, "hjc->hjc"),
                 ein(f"{cnt}<-{cnt}", cnt, cnt, "hjc->hjc", skew=T),
                 ein(f"{cnt}<-pc.out", f"{n}.pc", cnt, "hjc->hjc", skew=count_window(M, T), w=-one,
                     mode=INHIBITORY),
                 ein(f"{n}.p2<-counts", cnt, f"{n}.p2", "hjc->hjcg", port=2, skew=-(M - 1) * T)]
        return pops, syns
    # T > 63 (the loop's delay T - 1 exceeds a synapse's): counts = sum over the M key tiles of the bank's tile
    # sums, later tiles at +kT; the count gate held for the M query tiles: both sums of M copies k T apart,
    # built by doubling (log2 M stages of 2 groups)
    pops.append(Population(f"{n}.cgate", (H * dh, dh), kind="prod", vth=0, source=src))
    syns.append(sparse(f"{n}.cgate<-window", window, f"{n}.cgate",
                       _csr(np.arange(H * dh * dh), np.zeros(H * dh * dh, dtype=np.int64), H * dh * dh, 1), port=2))
    p_, s_, cnt = _delay_sum(f"{n}.counts", f"{n}.pc", (H * dh, dh), M, T, -1, src, final=f"{n}.counts")
    pops += p_
    syns += s_
    syns.append(ein(f"{n}.cgate<-counts", cnt, f"{n}.cgate", "hjc->hjc", port=1))
    p_, s_, hold = _delay_sum(f"{n}.chold", f"{n}.cgate", (H * dh, dh), M, T, +1, src)
    pops += p_
    syns += s_
    syns.append(ein(f"{n}.p2<-chold", hold, f"{n}.p2", "hjc->hjcg", port=2))
    return pops, syns


def _gate_operands(net: LoweredNetwork, a: Attention, window: str) -> bool:
    """Hold op ``a``'s Q, K and V silent outside their window by inhibition from one ``off`` neuron
    (:mod:`.operand_gate`) when that is exact for all three and they sit at one latency; else nothing changes
    and the op keeps its AND gates.  A population gated for another op stays gated."""
    done = net.metadata.get("operand_gates", {})
    ops = [x for x in dict.fromkeys((a.q, a.k, a.v)) if x not in done]
    lat = path_latency_of(net)
    if len({lat[x] for x in (a.q, a.k, a.v)}) > 1:
        return False
    plans = {x: operand_gate.plan(net, x) for x in ops}
    if any(pl is None for pl in plans.values()):
        return False
    if plans:
        operand_gate.apply(net, f"{a.name}.off", window, plans, a.source or a.name)
    return True


def _delay_sum(prefix: str, x: str, shape: tuple, M: int, T: int, sign: int, source: str, final: str | None = None):
    """GradedVecs that sum M copies of population ``x`` spaced T steps apart: ``y[t] = sum_{k<M} x[t + sign k T]``
    in the populations' own (balanced) frames: sign -1 gathers the later tiles (the key counts), +1 holds a
    value for the M later tiles (the count gate).  By doubling: stage i+1 = stage i + stage i shifted 2^i T
    (two identity groups, the second with skew sign 2^i T: a group with skew s delivers x[t - s]), then one
    population summing the stages of M's set bits at their offsets: about log2 M populations of x's size with 2
    groups each, instead of M groups into one (whose synapses and axons grow with M).  Returns ``(populations, groups, name of y)``; ``final`` names y."""
    n = int(np.prod(shape))
    eye = np.ones((1,), dtype=np.int64)
    pops, syns = [], []
    stages = [x]
    B = int(M).bit_length() - 1

    def ident(name, s, d, skew):
        return Synapse(name, s, d, "einsum", eye, sign_mode=EXCITATORY, graded=True, einsum="i->i", axes={"i": n},
                       skew=skew, source=source)

    for i in range(B):
        name = final if (final and i == B - 1 and M == 1 << B) else f"{prefix}.s{i + 1}"
        pops.append(Population(name, tuple(shape), kind="graded_vec", vth=0, source=source))
        syns += [ident(f"{name}<-a", stages[-1], name, 0),
                 ident(f"{name}<-b", stages[-1], name, sign * (1 << i) * T)]
        stages.append(name)
    if M == 1 << B:
        return pops, syns, stages[-1]
    name = final or f"{prefix}.sum"
    pops.append(Population(name, tuple(shape), kind="graded_vec", vth=0, source=source))
    off = 0
    for b in range(B, -1, -1):
        if M >> b & 1:
            syns.append(ident(f"{name}<-s{b}", stages[b], name, sign * off * T))
            off += 1 << b
    return pops, syns, name


def attention_to_graded(net: LoweredNetwork, order: str = "auto", schedule: str = "parallel",
                        balance: bool = True) -> LoweredNetwork:
    """A copy of ``net`` with every attention op replaced by product neurons, graded counts and graded
    synapse groups (see the module docstring), re-balanced unless ``balance`` is false (the pass flow of
    :mod:`neurodeploy.lower.passes` balances once, last).  ``order``: ``auto`` (cheaper per op), ``ktv``
    or ``qkt``, or a dict {op name: order} (missing ops: auto).  Records per op the order, the product-neuron count and the added latency in
    ``metadata["attention_graded"]`` and the network's added latency in ``metadata["attention_latency_added"]``."""
    if schedule not in ATTENTION_SCHEDULES:
        raise BadInputError(f"attention_schedule '{schedule}': not one of {', '.join(ATTENTION_SCHEDULES)}")
    out = copy.deepcopy(net)
    before = path_latency(net) if net.attention else 0
    ops = []
    bounds = {}         # payload bounds proved by construction (the engine's sums of weights are looser)
    for a in list(out.attention):
        H, N, dh = a.heads, a.tokens, a.dim // a.heads
        if schedule in TILE_TOKENS:
            T = int(out.metadata.get("time_steps", 0) or 0)
            window = sample_clock(out)
            G = min(TILE_TOKENS[schedule], N)
            gated = _gate_operands(out, a, window)
            pops, syns = tiled_parts(a, G, T, window, inhibited=gated)
            out.populations += pops
            out.synapses += syns
            out.attention.remove(a)
            M = -(-N // G)
            # the counts (moving or doubling) hold one sample's tile counts of one model step: <= N
            bounds.update({f"{a.name}.pc": G, f"{a.name}.counts": N, f"{a.name}.p2": N, f"{a.name}.tsum": dh * N})
            if moving_count(T):
                # every tile count leaves the moving count (2M - 1) T steps after it came (lower/chain.py)
                loops = dict(out.metadata.get("finite_loops", {}) or {})
                loops[f"{a.name}.counts<-{a.name}.counts"] = count_window(M, T)
                out.metadata["finite_loops"] = loops
                # Q's serializer waits (M - 1) T + 3 steps for the counts: placed late enough to need no relay
                out.metadata["relay_free_populations"] = list(
                    out.metadata.get("relay_free_populations", []) or []) + [f"{a.name}.ser_q"]
            else:
                bounds.update({f"{a.name}.cgate": N, f"{a.name}.chold.sum": M * N})
                # the doubling sums' stages: 2^i tile counts (each <= G), 2^i held counts (each <= N)
                for i in range(1, M.bit_length()):
                    bounds.update({f"{a.name}.counts.s{i}": min(N, (1 << i) * G),
                                   f"{a.name}.chold.s{i}": (1 << i) * N})
            ops.append(dict(tiled_cost(H, N, a.dim, G, T, gated), name=a.name, source=a.source or a.name,
                            schedule=schedule, heads=H, tokens=N, head_dim=dh, gate="inhibition" if gated else "and",
                            product_neurons_parallel=product_neuron_count(a, choose_order(a)),
                            stage_latency_steps=tiled_latency(N, G, T, gated)))
            continue
        pk = packing(H, N, a.dim, repack=schedule == "repacked") if schedule in ("packed", "repacked") else None
        if pk is not None:
            pops, syns = packed_parts(a, pk)
            out.populations += pops
            out.synapses += syns
            out.attention.remove(a)
            b, p = pk["digit_bits"], pk["digits_per_word"]
            word = sum(((1 << b) - 1) << (b * i) for i in range(p))      # every digit below 2^b: no carry
            b1, p1 = pk["stage1_digit_bits"], pk["stage1_digits_per_word"]
            word1 = sum(((1 << b1) - 1) << (b1 * i) for i in range(p1))
            bounds.update({f"{a.name}.vpack": word1, f"{a.name}.p1": word1, f"{a.name}.counts": word,
                           f"{a.name}.p2": word, f"{a.name}.words": word, f"{a.name}.digits": dh * N})
            bounds.update({f"{a.name}.shift{k}": word >> (b * k) for k in range(1, p)})
            if pk["repacked"]:
                bounds.update({f"{a.name}.counts1": word1, f"{a.name}.cdigits": N})
                bounds.update({f"{a.name}.cshift{k}": word1 >> (b1 * k) for k in range(1, p1)})
            ops.append(dict({k: v for k, v in pk.items()}, name=a.name, source=a.source or a.name, schedule=schedule,
                            order="ktv", heads=H, tokens=N, head_dim=dh,
                            product_neurons_parallel=product_neuron_count(a, choose_order(a)),
                            stage_latency_steps=REPACKED_LATENCY if pk["repacked"] else PACKED_LATENCY))
            continue
        o = order.get(a.name, "auto") if isinstance(order, dict) else order
        o = choose_order(a) if o == "auto" else o
        pops, syns = graded_parts(a, o)
        # every population after its sources (topological order is recomputed by the network anyway)
        out.populations += pops
        out.synapses += syns
        out.attention.remove(a)
        ops.append({"name": a.name, "source": a.source or a.name, "schedule": "parallel", "order": o, "heads": H,
                    "tokens": N,
                    "head_dim": dh, "product_neurons": product_neuron_count(a, o),
                    "product_neurons_other_order": product_neuron_count(a, "qkt" if o == "ktv" else "ktv"),
                    "graded_vec_neurons": H * dh * dh if o == "ktv" else H * N * N,
                    "stage_latency_steps": STAGE_LATENCY})
    if not ops:
        return out
    if balance:
        balance_network(out, int(out.metadata.get("time_steps", 0) or 0) or None)
    out.validate()
    after = path_latency(out)
    out.metadata = dict(out.metadata)
    out.metadata["attention_lowering"] = "graded"
    out.metadata["attention_schedule"] = schedule
    out.metadata["attention_graded"] = ops
    if bounds:
        out.metadata["graded_bounds"] = dict(out.metadata.get("graded_bounds", {}) or {}, **bounds)
    out.metadata["attention_latency_added"] = after - before
    out.metadata.setdefault("passes", [])
    out.metadata["passes"] = list(out.metadata["passes"]) + ["graded_attention"]
    return out
