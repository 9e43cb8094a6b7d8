/* neurodeploy.sim native kernels (plain C, float32, one thread), loaded with ctypes by native.py.
 *
 * Why our own code: no library offers (1) a CUBA LIF step fused into one pass that also emits the indices
 * of its spikes, or (2) a convolution / dense product that sums only the weights of the active (or, when
 * most inputs are active, the silent) 0/1 inputs of a spike vector.  torch's CPU convolutions are dense
 * and torch.compile takes minutes to build on a busy machine.
 *
 * Every value is an integer held exactly in float32 (the engine's bounds prove every partial sum and
 * product < 2**24), so the order of the additions never changes a result: the same integers as the
 * engine's torch / numpy ops and as Lava.  Built with -ffp-contract=off all the same.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#define CHUNK 512
/* rounding toward zero through int32 (vectorises; every value here is an integer below 2**24 in
 * magnitude times a power of two, so this equals truncf up to the sign of a zero) */
#define TRUNC(a) ((float)(int32_t)(a))

/* Writes the indices j (0 <= j < n) where sb[j] != 0 (spikes: want_spikes) or == 0 into ib; returns how many. */
static int32_t list_row(const float *restrict sb, int64_t n, int want_spikes, int32_t *restrict ib)
{
    int32_t c = 0;
    int64_t j = 0;
#ifdef __AVX512F__
    __m512i base = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i step = _mm512_set1_epi32(16);
    const __m512 zero = _mm512_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        __mmask16 mk = _mm512_cmp_ps_mask(_mm512_loadu_ps(sb + j), zero, _CMP_NEQ_UQ);
        if (!want_spikes)
            mk = (__mmask16)~mk;
        _mm512_mask_compressstoreu_epi32(ib + c, mk, base);
        c += __builtin_popcount((unsigned)mk);
        base = _mm512_add_epi32(base, step);
    }
#endif
    for (; j < n; j++) {            /* branch-free */
        ib[c] = (int32_t)j;
        c += (sb[j] != 0.0f) == (want_spikes != 0);
    }
    return c;
}

/* One float-state LIF step of B x n neurons (LIFFloatModel.update):
 *   u = trunc(u * fu) + slot * 64                       (u == NULL: no current memory, u = slot * 64)
 *   x = trunc(v * fv) + u + bias  (fv == 0: x = u + bias), clamped to +-vlim when clamp
 *   spike = x > th; v = spike ? 0 : x; s = spike (0/1)
 * slot, bias may be NULL (0); bias has bias_rows rows (1: broadcast over the batch, or B).
 * uin (may be NULL): receives u of this step (records of a population without current memory).
 * cnt (B + 1 entries, may be NULL): cnt[b] = spikes of row b; with idx (B*n entries, may be NULL), row b's
 * segment idx[b*n ..) lists the shorter of its two lists: its spikes when 2 cnt[b] <= n, else its silent
 * neurons; cnt[B] = the total length of those lists.
 * Returns the number of spikes.  Written as simple loops over chunks so that the compiler vectorises them. */
int64_t nd_lif_f32(float *restrict v, float *restrict u, const float *restrict slot, const float *restrict bias,
                   int64_t bias_rows, int64_t B, int64_t n, float fu, float fv, float th, int clamp, float vlim,
                   float *restrict s, float *restrict uin, int32_t *restrict idx, int32_t *restrict cnt)
{
    float cu[CHUNK], x[CHUNK];
    int64_t total = 0, listed = 0;
    for (int64_t b = 0; b < B; b++) {
        int32_t k = 0;
        for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
            int64_t m = n - i0 < CHUNK ? n - i0 : CHUNK;
            int64_t o = b * n + i0;
            float *restrict vb = v + o, *restrict sb = s + o;
            if (slot) {
                const float *restrict xb = slot + o;
                for (int64_t j = 0; j < m; j++)
                    cu[j] = xb[j] * 64.0f;
            } else {
                for (int64_t j = 0; j < m; j++)
                    cu[j] = 0.0f;
            }
            if (u) {
                float *restrict ub = u + o;
                for (int64_t j = 0; j < m; j++) {
                    float t = TRUNC(ub[j] * fu) + cu[j];
                    ub[j] = t;
                    cu[j] = t;
                }
            }
            if (uin)
                memcpy(uin + o, cu, (size_t)m * sizeof(float));
            if (fv != 0.0f) {
                for (int64_t j = 0; j < m; j++)
                    x[j] = TRUNC(vb[j] * fv) + cu[j];
            } else {
                for (int64_t j = 0; j < m; j++)
                    x[j] = cu[j];
            }
            if (bias) {
                const float *restrict bb = bias + (bias_rows == 1 ? i0 : o);
                for (int64_t j = 0; j < m; j++)
                    x[j] += bb[j];
            }
            if (clamp) {
                for (int64_t j = 0; j < m; j++) {
                    float t = x[j] > vlim ? vlim : x[j];
                    x[j] = t < -vlim ? -vlim : t;
                }
            }
            for (int64_t j = 0; j < m; j++) {
                int sp = x[j] > th;
                sb[j] = sp ? 1.0f : 0.0f;
                vb[j] = sp ? 0.0f : x[j];
                k += sp;
            }
        }
        if (cnt)
            cnt[b] = k;
        if (idx)
            listed += list_row(s + b * n, n, 2 * (int64_t)k <= n, idx + b * n);
        total += k;
    }
    if (cnt)
        cnt[B] = (int32_t)listed;
    return total;
}

/* Weight rows of the event sums (laid out by groups.py: row_layout): a row for n outputs holds
 * ld = row_ld(n) floats: n < 16 or a multiple of 16: the n weights; else the first 16 * (n / 16) weights,
 * then the weights of the last 16 outputs (n - 16 .. n) with the lanes already covered set to 0.  So every
 * vector is whole: the tail vector overlaps the one before it on y and adds 0 there (no masked store,
 * which stalls the next load of the same outputs). */
#ifdef __AVX512F__
#define NV_MAX 8                    /* 16-float vectors held in registers per block of outputs */
#define LOADW(k, p) ((k) ? _mm512_maskz_loadu_ps((k), (p)) : _mm512_loadu_ps(p))

/* One block of acc_rows: nf whole vectors at y[16 j], w[16 j]; then, when tail, one more: y[toff ..]
 * against w[16 nf ..] (stored first, so the whole vectors win the overlap), or, for a row shorter than 16
 * (mask != 0), its masked lanes.  nf, tail and neg are constant after inlining: the accumulators stay in
 * registers while every listed row is added. */
static inline __attribute__((always_inline)) void acc_block(float *restrict y, const float *restrict w,
                                                            const int32_t *restrict ix, int64_t m, int64_t stride,
                                                            int64_t base, const int nf, const int tail,
                                                            int64_t toff, __mmask16 mask, const int neg)
{
    __m512 a[NV_MAX], at = _mm512_setzero_ps();
    for (int j = 0; j < nf; j++)
        a[j] = _mm512_loadu_ps(y + 16 * j);
    if (tail)
        at = LOADW(mask, y + toff);
    for (int64_t k = 0; k < m; k++) {
        const float *restrict wk = w + (int64_t)ix[k] * stride + base;
        for (int j = 0; j < nf; j++) {
            __m512 x = _mm512_loadu_ps(wk + 16 * j);
            a[j] = neg ? _mm512_sub_ps(a[j], x) : _mm512_add_ps(a[j], x);
        }
        if (tail) {
            __m512 x = LOADW(mask, wk + 16 * nf);
            at = neg ? _mm512_sub_ps(at, x) : _mm512_add_ps(at, x);
        }
    }
    if (tail) {
        if (mask)
            _mm512_mask_storeu_ps(y + toff, mask, at);
        else
            _mm512_storeu_ps(y + toff, at);
    }
    for (int j = 0; j < nf; j++)
        _mm512_storeu_ps(y + 16 * j, a[j]);
}

#define ND_BLOCKS(CALL)                                                                           \
    ND_B(0, 1, CALL) ND_B(1, 0, CALL) ND_B(1, 1, CALL) ND_B(2, 0, CALL) ND_B(2, 1, CALL)        \
    ND_B(3, 0, CALL) ND_B(3, 1, CALL) ND_B(4, 0, CALL) ND_B(4, 1, CALL) ND_B(5, 0, CALL)        \
    ND_B(5, 1, CALL) ND_B(6, 0, CALL) ND_B(6, 1, CALL) ND_B(7, 0, CALL) ND_B(7, 1, CALL)        \
    ND_B(8, 0, CALL)
#define ND_B(NF, TAIL, CALL)                                                                      \
    case 4 * NF + 2 * TAIL: CALL(NF, TAIL, 0); break;                                             \
    case 4 * NF + 2 * TAIL + 1: CALL(NF, TAIL, 1); break;
#endif

/* The one loop shape of both event sums: y[0 .. n) += (neg: -=) the sum over k < m of the weight row at
 * w[ix[k] * stride + base] (laid out as above).  With AVX-512 the outputs are taken in blocks of up to
 * NV_MAX vectors held in registers while every row is added (one load and store of y per block). */
static void acc_rows(float *restrict y, const float *restrict w, const int32_t *restrict ix, int64_t m,
                     int64_t stride, int64_t base, int64_t n, int neg)
{
    if (n <= 0)
        return;
#ifdef __AVX512F__
    int64_t nfull = n < 16 ? 0 : n / 16;
    int tail = n % 16 != 0;
    __mmask16 mask = n < 16 ? (__mmask16)((1u << n) - 1u) : 0;
    int64_t toff = n < 16 ? 0 : n - 16;
    int64_t o = 0;                  /* whole vectors done */
    for (;;) {
        int nf = (int)(nfull - o < NV_MAX ? nfull - o : NV_MAX);
        int tl = tail && nf + 1 <= NV_MAX && o + nf == nfull;
        float *restrict yo = y + 16 * o;
        int64_t bo = base + 16 * o, to = toff - 16 * o;
        switch (4 * nf + 2 * tl + (neg != 0)) {
#define ND_CALL(NF, TAIL, NEG) acc_block(yo, w, ix, m, stride, bo, NF, TAIL, to, mask, NEG)
        ND_BLOCKS(ND_CALL)
#undef ND_CALL
        }
        o += nf;
        if (o == nfull && (tl || !tail))
            break;
    }
#else
    int64_t full = n < 16 ? n : 16 * (n / 16);
    int64_t r = n < 16 ? 0 : n - full;
    for (int64_t k = 0; k < m; k++) {
        const float *restrict wk = w + (int64_t)ix[k] * stride + base;
        const float *restrict wt = wk + full;      /* tail lane j <-> output n - 16 + j */
        float *restrict yt = y + n - 16;
        if (neg) {
            for (int64_t o = 0; o < full; o++)
                y[o] -= wk[o];
            for (int64_t j = 16 - r; j < 16 && r; j++)
                yt[j] -= wt[j];
        } else {
            for (int64_t o = 0; o < full; o++)
                y[o] += wk[o];
            for (int64_t j = 16 - r; j < 16 && r; j++)
                yt[j] += wt[j];
        }
    }
#endif
}

/* Where a row of an event sum starts: a row listing its spikes starts from 0, one listing its silent
 * inputs from ones (the sum over all inputs at 1).  init: y holds nothing yet (set it), else add. */
static void start_row(float *restrict yb, const float *restrict ones, int64_t n_out, int spikes, int init)
{
    if (init && spikes)
        memset(yb, 0, (size_t)n_out * sizeof(float));
    else if (init)
        memcpy(yb, ones, (size_t)n_out * sizeof(float));
    else if (!spikes)
        for (int64_t o = 0; o < n_out; o++)
            yb[o] += ones[o];
}

/* The events of one row of a conv event sum: the listed inputs at one position (consecutive in a list)
 * share its taps, and each tap's outputs take all of them in one acc_rows block.  Input r = p*C + c has
 * its weights for tap t at c*kco + tw[t] = r*kco + (tw[t] - p*C*kco). */
#define ND_CONV_ROW(ACC)                                                                          \
    for (int64_t e = 0; e < len;) {                                                               \
        int32_t p = pos[ib[e]];                                                                   \
        int64_t e2 = e + 1;                                                                       \
        while (e2 < len && pos[ib[e2]] == p)                                                      \
            e2++;                                                                                 \
        int64_t base = -(int64_t)p * C * kco;                                                     \
        for (int32_t t = tstart[p]; t < tstart[p + 1]; t++)                                       \
            ACC;                                                                                  \
        e = e2;                                                                                   \
    }

#ifdef __AVX512F__
/* one row with Co <= 16 * NV_MAX in one block: nf, tail, neg constant after inlining (no dispatch per tap) */
static inline __attribute__((always_inline)) void conv_row_block(
    float *restrict yb, const float *restrict w, const int32_t *restrict ib, int64_t len, const int32_t *restrict pos,
    int64_t C, int64_t kco, const int32_t *restrict tstart, const int32_t *restrict tout, const int32_t *restrict tw,
    const int nf, const int tail, int64_t toff, __mmask16 mask, const int neg)
{
    ND_CONV_ROW(acc_block(yb + tout[t], w, ib + e, e2 - e, kco, base + tw[t], nf, tail, toff, mask, neg))
}
#endif

/* A correlation (PyTorch conv2d, groups 1, channels-last on both sides) summed over the listed inputs of
 * each row only (nd_lif_f32's lists): y[b, out, :] += w[c, tap, :] for every listed spike r = (h*W + w)*C + c
 * of row b and every kernel tap that reaches an output; a row that lists its silent inputs starts from
 * ones and subtracts theirs.
 * w: [C, KH, KW, ld] (rows of Co outputs laid out as above, ld = row_ld(Co); kco = KH*KW*ld floats per
 * input channel).  Tables (built once per group): pos[r] = h*W + w; taps of position p: tstart[p] ..
 * tstart[p+1] into tout (output offset (oy*Wo + ox)*Co) and tw (weight offset tap*ld).  y: [B, n_out] (n_out = Ho*Wo*Co); init: y is
 * uninitialised (written, not added to). */
void nd_conv_events_f32(float *restrict y, const float *restrict w, const float *restrict ones,
                        const int32_t *restrict idx, const int32_t *restrict cnt, int64_t B, int64_t n,
                        int64_t n_out, int64_t C, int64_t kco, const int32_t *restrict pos,
                        const int32_t *restrict tstart, const int32_t *restrict tout, const int32_t *restrict tw,
                        int64_t Co, int init)
{
    for (int64_t b = 0; b < B; b++) {
        const int32_t *ib = idx + b * n;
        int spikes = 2 * (int64_t)cnt[b] <= n;
        int64_t len = spikes ? cnt[b] : n - cnt[b];
        float *restrict yb = y + b * n_out;
        start_row(yb, ones, n_out, spikes, init);
#ifdef __AVX512F__
        if (Co / 16 + (Co % 16 != 0) <= NV_MAX) {
            int nf = Co < 16 ? 0 : (int)(Co / 16), tail = Co % 16 != 0;
            __mmask16 mask = Co < 16 ? (__mmask16)((1u << Co) - 1u) : 0;
            int64_t toff = Co < 16 ? 0 : Co - 16;
            switch (4 * nf + 2 * tail + !spikes) {
#define ND_CALL(NF, TAIL, NEG) conv_row_block(yb, w, ib, len, pos, C, kco, tstart, tout, tw, NF, TAIL, toff, mask, NEG)
            ND_BLOCKS(ND_CALL)
#undef ND_CALL
            }
            continue;
        }
#endif
        ND_CONV_ROW(acc_rows(yb + tout[t], w, ib + e, e2 - e, kco, base + tw[t], Co, !spikes))
    }
}

/* A dense product [n_in, n_out] (rows laid out as above: [n_in, row_ld(n_out)]) summed over the listed inputs of each row only (as for the conv):
 * y[b, :] += w[i, :] per listed spike, or ones minus w[i, :] per listed silent input; then the weight
 * exponent: scale = 2**weight_exp (1: none), the row's sum times scale rounded down (Lava's << e, or
 * floor >> -e), summed in tmp (n_out floats) first when scale != 1.  init: y is uninitialised. */
void nd_rows_events_f32(float *restrict y, const float *restrict w, const float *restrict ones,
                        const int32_t *restrict idx, const int32_t *restrict cnt, int64_t B, int64_t n_in,
                        int64_t n_out, int init, float scale, float *restrict tmp)
{
    int64_t ld = n_out < 16 || n_out % 16 == 0 ? n_out : 16 * (n_out / 16 + 1);
    for (int64_t b = 0; b < B; b++) {
        int spikes = 2 * (int64_t)cnt[b] <= n_in;
        int64_t len = spikes ? cnt[b] : n_in - cnt[b];
        float *restrict yb = y + b * n_out;
        float *restrict acc = scale == 1.0f ? yb : tmp;
        start_row(acc, ones, n_out, spikes, init || acc == tmp);
        acc_rows(acc, w, idx + b * n_in, len, ld, 0, n_out, !spikes);
        if (acc != tmp)
            continue;
        if (init)
            for (int64_t o = 0; o < n_out; o++)
                yb[o] = floorf(tmp[o] * scale);
        else
            for (int64_t o = 0; o < n_out; o++)
                yb[o] += floorf(tmp[o] * scale);
    }
}
