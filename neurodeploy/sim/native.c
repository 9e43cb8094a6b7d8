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

#define CHUNK 512
/* rounding toward zero through int32 (vectorises; every value here is an integer below 2**24 in
 * magnitude times a power of two, so this equals truncf up to the sign of a zero) */
#define TRUNC(a) ((float)(int32_t)(a))

/* One float-state LIF step of B x n neurons (LIFFloatModel.update):
 *   u = trunc(u * fu) + slot * 64                       (u == NULL: no current memory, u = slot * 64)
 *   x = trunc(v * fv) + u + bias  (fv == 0: x = u + bias), clamped to +-vlim when clamp
 *   spike = x > th; v = spike ? 0 : x; s = spike (0/1)
 * slot, bias may be NULL (0); bias has bias_rows rows (1: broadcast over the batch, or B).
 * uin (may be NULL): receives u of this step (records of a population without current memory).
 * idx, cnt (may be NULL; B*n and B entries): row b's segment idx[b*n .. (b+1)*n) lists the indices (within
 * the row) of its spikes from the front, cnt[b] of them, and those of its silent neurons from the back.
 * Returns the number of spikes.  Written as simple loops over chunks so that the compiler vectorises them. */
int64_t nd_lif_f32(float *restrict v, float *restrict u, const float *restrict slot, const float *restrict bias,
                   int64_t bias_rows, int64_t B, int64_t n, float fu, float fv, float th, int clamp, float vlim,
                   float *restrict s, float *restrict uin, int32_t *restrict idx, int32_t *restrict cnt)
{
    float cu[CHUNK], x[CHUNK];
    int64_t total = 0;
    for (int64_t b = 0; b < B; b++) {
        int32_t k = 0, z = (int32_t)n;
        int32_t *ib = idx ? idx + b * n : NULL;
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
            }
            if (ib) {       /* branch-free: both ends written, one of them advances */
                for (int64_t j = 0; j < m; j++) {
                    int32_t sp = sb[j] != 0.0f, i = (int32_t)(i0 + j);
                    ib[k] = i;
                    ib[z - 1] = i;
                    k += sp;
                    z -= 1 - sp;
                }
            } else {
                for (int64_t j = 0; j < m; j++)
                    k += sb[j] != 0.0f;
            }
        }
        if (cnt)
            cnt[b] = k;
        total += k;
    }
    return total;
}

/* A correlation (PyTorch conv2d, groups 1, channels-last on both sides) summed over the listed inputs of
 * each row only: y[b, out, :] += sign * w[c, tap, :] for every listed input r = (h*W + w)*C + c of row b
 * and every kernel tap that reaches an output.  The listed inputs of row b are idx[b*n + cnt[b] ..) when
 * silent (sign < 0: the silent ones, from the back of the segment), else idx[b*n .. + cnt[b]).
 * Tables (built once per group): wof[r] = c*KH*KW*Co, pos[r] = h*W + w; taps of position p:
 * tstart[p] .. tstart[p+1] into tout (output offset (oy*Wo + ox)*Co) and tw (weight offset tap*Co).
 * y: [B, n_out] (n_out = Ho*Wo*Co). */
void nd_conv_events_f32(float *restrict y, const float *restrict w, const int32_t *restrict idx,
                        const int32_t *restrict cnt, int64_t B, int64_t n, int64_t n_out, float sign,
                        const int32_t *restrict wof, const int32_t *restrict pos, const int32_t *restrict tstart,
                        const int32_t *restrict tout, const int32_t *restrict tw, int64_t Co)
{
    for (int64_t b = 0; b < B; b++) {
        const int32_t *ib = idx + b * n;
        int64_t lo = sign > 0 ? 0 : cnt[b], hi = sign > 0 ? cnt[b] : n;
        float *restrict yb = y + b * n_out;
        for (int64_t e = lo; e < hi; e++) {
            int32_t r = ib[e];
            const float *restrict wc = w + wof[r];
            int32_t p = pos[r];
            for (int32_t t = tstart[p]; t < tstart[p + 1]; t++) {
                float *restrict yo = yb + tout[t];
                const float *restrict wk = wc + tw[t];
                if (sign > 0)
                    for (int64_t o = 0; o < Co; o++)
                        yo[o] += wk[o];
                else
                    for (int64_t o = 0; o < Co; o++)
                        yo[o] -= wk[o];
            }
        }
    }
}

/* A dense product [n_in, n_out] summed over the listed inputs of each row only (listed as for the conv):
 * y[b, :] += sign * w[i, :]. */
void nd_rows_events_f32(float *restrict y, const float *restrict w, const int32_t *restrict idx,
                        const int32_t *restrict cnt, int64_t B, int64_t n_in, int64_t n_out, float sign)
{
    for (int64_t b = 0; b < B; b++) {
        const int32_t *ib = idx + b * n_in;
        int64_t lo = sign > 0 ? 0 : cnt[b], hi = sign > 0 ? cnt[b] : n_in;
        float *restrict yb = y + b * n_out;
        for (int64_t e = lo; e < hi; e++) {
            const float *restrict wk = w + (int64_t)ib[e] * n_out;
            if (sign > 0)
                for (int64_t o = 0; o < n_out; o++)
                    yb[o] += wk[o];
            else
                for (int64_t o = 0; o < n_out; o++)
                    yb[o] -= wk[o];
        }
    }
}
