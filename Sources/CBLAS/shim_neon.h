/* NEON row kernels for aarch64 (Linux and Apple silicon), included from shim.h's non-x86 branch
   after the portable definitions (the vector loops' tails use assay_weight).
   Advanced SIMD is part of every AArch64 CPU, so there is no run-time check: shim.h's
   assay_native_level() answers ASSAY_LEVEL_NEON there and the entry points route here.

   Contracts are those of the x86 kernels in shim.h:
     assay_neon_dot_rows / _8rows: Σ w_j·x_j over f32 (kind 0), bf16 (1) or f16 (2) weights.
     assay_neon_q4_1_f32 / _q8_0_f32: exact f32 activations against Q4_1 / Q8_0 rows, m of them
         per pass (out[i·ldo + r]); each activation's arithmetic does not depend on m, so a batch
         gets the same bits as one vector alone (batched decode relies on it).
     assay_neon_q4_1_q8_1 / _q8_0_q8_0: ggml's quantised activations, exact integer block dots.
     assay_neon_dequant_q4_1 / _q8_0: bit-identical to ggml's dequantisation (d·q is exact in
         float, so fma(d, q, m) rounds once, as d·q + m does).
   Only baseline Armv8-A instructions are used (no dotprod, no fp16 arithmetic): the f16
   conversion (fcvtl) is baseline. `make check-neon` runs these against a Float64 reference under
   qemu-aarch64 (tools/ci/aarch64/neon-check.c). */

#include <arm_neon.h>

/* Four weights from j on as floats: f32, bf16 (a 16-bit shift), f16 (fcvtl). */
static inline float32x4_t assay_neon_load4(const void *w, int kind, long j) {
    if (kind == 1) return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)w + j), 16));
    if (kind == 2) return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)w + j)));
    return vld1q_f32((const float *)w + j);
}

/* G activations (1 ≤ G ≤ 4, a constant where inlined) against one weight row: the row's weights
   are converted once per 8 for all G; per activation two accumulators (even and odd groups of 4). */
__attribute__((always_inline))
static inline void assay_neon_dot_group(const void *w, int kind, const float *x, long ldx, int G, long n, float *out) {
    float32x4_t a0[4], a1[4];
    for (int i = 0; i < G; i++) { a0[i] = vdupq_n_f32(0); a1[i] = vdupq_n_f32(0); }
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        float32x4_t w0 = assay_neon_load4(w, kind, j), w1 = assay_neon_load4(w, kind, j + 4);
        for (int i = 0; i < G; i++) {
            a0[i] = vfmaq_f32(a0[i], w0, vld1q_f32(x + i * ldx + j));
            a1[i] = vfmaq_f32(a1[i], w1, vld1q_f32(x + i * ldx + j + 4));
        }
    }
    for (int i = 0; i < G; i++) {
        float s = vaddvq_f32(vaddq_f32(a0[i], a1[i]));
        for (long t = j; t < n; t++) s = fmaf(assay_weight(w, kind, t), x[i * ldx + t], s);
        out[i] = s;
    }
}

/* out[i] = row · x_i for m activations (x_i at x + i·ldx), in groups of four. */
static inline void assay_neon_dot_rows(const void *w, int kind, const float *x, long ldx, int m, long n, float *out) {
    for (int i = 0; i < m; i += 4) {
        switch (m - i) {
        case 1: assay_neon_dot_group(w, kind, x + i * ldx, ldx, 1, n, out + i); break;
        case 2: assay_neon_dot_group(w, kind, x + i * ldx, ldx, 2, n, out + i); break;
        case 3: assay_neon_dot_group(w, kind, x + i * ldx, ldx, 3, n, out + i); break;
        default: assay_neon_dot_group(w, kind, x + i * ldx, ldx, 4, n, out + i); break;
        }
    }
}

/* Eight rows (ldw elements apart) against one activation: x is read once per 4 for all eight. */
static inline void assay_neon_dot_8rows(const void *w, int kind, long ldw, const float *x, long n, float *out) {
    long es = kind == 0 ? 4 : 2;
    float32x4_t acc[8];
    for (int r = 0; r < 8; r++) acc[r] = vdupq_n_f32(0);
    long j = 0;
    for (; j + 4 <= n; j += 4) {
        float32x4_t xv = vld1q_f32(x + j);
        for (int r = 0; r < 8; r++) acc[r] = vfmaq_f32(acc[r], assay_neon_load4((const char *)w + r * ldw * es, kind, j), xv);
    }
    for (int r = 0; r < 8; r++) {
        float s = vaddvq_f32(acc[r]);
        for (long t = j; t < n; t++) s = fmaf(assay_weight((const char *)w + r * ldw * es, kind, t), x[t], s);
        out[r] = s;
    }
}

static inline float assay_neon_half(const uint8_t *p) {
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vld1_dup_u16((const uint16_t *)(const void *)p))), 0);
}

/* The 32 quants of a block as eight float vectors in natural order. Q4_1: low nibbles of bytes
   0–15 are weights 0–15, high nibbles 16–31. */
static inline void assay_neon_q4_1_values(const uint8_t *qs, float32x4_t *v) {
    uint8x16_t q = vld1q_u8(qs);
    uint8x16_t lo = vandq_u8(q, vdupq_n_u8(0x0F)), hi = vshrq_n_u8(q, 4);
    uint16x8_t l0 = vmovl_u8(vget_low_u8(lo)), l1 = vmovl_u8(vget_high_u8(lo));
    uint16x8_t h0 = vmovl_u8(vget_low_u8(hi)), h1 = vmovl_u8(vget_high_u8(hi));
    v[0] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(l0)));
    v[1] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(l0)));
    v[2] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(l1)));
    v[3] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(l1)));
    v[4] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(h0)));
    v[5] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(h0)));
    v[6] = vcvtq_f32_u32(vmovl_u16(vget_low_u16(h1)));
    v[7] = vcvtq_f32_u32(vmovl_u16(vget_high_u16(h1)));
}

static inline void assay_neon_q8_0_values(const uint8_t *qs, float32x4_t *v) {
    for (int h = 0; h < 2; h++) {
        int8x16_t q = vld1q_s8((const int8_t *)qs + 16 * h);
        int16x8_t a = vmovl_s8(vget_low_s8(q)), b = vmovl_s8(vget_high_s8(q));
        v[4 * h + 0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(a)));
        v[4 * h + 1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(a)));
        v[4 * h + 2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(b)));
        v[4 * h + 3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(b)));
    }
}

/* Σ v_k·x_k of one block as four partial sums, in two chains. */
static inline float32x4_t assay_neon_block_dot(const float32x4_t *v, const float *xb) {
    float32x4_t t = vmulq_f32(v[0], vld1q_f32(xb)), u = vmulq_f32(v[1], vld1q_f32(xb + 4));
    for (int k = 2; k < 8; k += 2) {
        t = vfmaq_f32(t, v[k], vld1q_f32(xb + 4 * k));
        u = vfmaq_f32(u, v[k + 1], vld1q_f32(xb + 4 * k + 4));
    }
    return vaddq_f32(t, u);
}

/* G exact activations (1 ≤ G ≤ 4) against `rows` rows; a block's quants are widened once for all
   G, and per activation even and odd blocks go to separate accumulators, whatever G is. `q4` picks
   Q4_1 (20-byte blocks, minimum terms m·Σx from xs) or Q8_0 (34-byte blocks). */
__attribute__((always_inline))
static inline void assay_neon_group(int q4, const uint8_t *w, long rowBytes, long rows, const float *const *x,
                                    const float *const *xs, int G, long blocks, float *out, long ldo) {
    const long bb = q4 ? 20 : 34, off = q4 ? 4 : 2;
    for (long r = 0; r < rows; r++) {
        const uint8_t *p = w + r * rowBytes;
        float32x4_t acc[2][4], v[8];
        float mn[2][4];
        for (int i = 0; i < G; i++) { acc[0][i] = acc[1][i] = vdupq_n_f32(0); mn[0][i] = mn[1][i] = 0; }
        for (long b = 0; b < blocks; b++) {
            const uint8_t *q = p + bb * b;
            int e = (int)(b & 1);
            if (q4) assay_neon_q4_1_values(q + off, v); else assay_neon_q8_0_values(q + off, v);
            float d = assay_neon_half(q), m = q4 ? assay_neon_half(q + 2) : 0;
            for (int i = 0; i < G; i++) {
                acc[e][i] = vfmaq_n_f32(acc[e][i], assay_neon_block_dot(v, x[i] + 32 * b), d);
                if (q4) mn[e][i] = fmaf(m, xs[i][b], mn[e][i]);
            }
        }
        for (int i = 0; i < G; i++) out[i * ldo + r] = vaddvq_f32(vaddq_f32(acc[0][i], acc[1][i])) + (mn[0][i] + mn[1][i]);
    }
}

/* m activations in groups of four, 16 rows at a time (their bytes stay in L1 across groups). */
static inline void assay_neon_rows_f32(int q4, const uint8_t *w, long rowBytes, long rows, const float *const *x,
                                       const float *const *xs, int m, long blocks, float *out, long ldo) {
    for (long r0 = 0; r0 < rows; r0 += 16) {
        long n = rows - r0 < 16 ? rows - r0 : 16;
        const uint8_t *wr = w + r0 * rowBytes;
        for (int i = 0; i < m; i += 4) {
            float *o = out + i * ldo + r0;
            const float *const *s = q4 ? xs + i : 0;
            switch (m - i) {
            case 1: assay_neon_group(q4, wr, rowBytes, n, x + i, s, 1, blocks, o, ldo); break;
            case 2: assay_neon_group(q4, wr, rowBytes, n, x + i, s, 2, blocks, o, ldo); break;
            case 3: assay_neon_group(q4, wr, rowBytes, n, x + i, s, 3, blocks, o, ldo); break;
            default: assay_neon_group(q4, wr, rowBytes, n, x + i, s, 4, blocks, o, ldo); break;
            }
        }
    }
}

/* Σ of 32 int8 × int8 products (a and b 32 bytes each), exact in int32. */
static inline int32_t assay_neon_dot_s8x32(int8x16_t a0, int8x16_t a1, const int8_t *b) {
    int8x16_t b0 = vld1q_s8(b), b1 = vld1q_s8(b + 16);
    int32x4_t s = vpaddlq_s16(vmull_s8(vget_low_s8(a0), vget_low_s8(b0)));
    s = vpadalq_s16(s, vmull_s8(vget_high_s8(a0), vget_high_s8(b0)));
    s = vpadalq_s16(s, vmull_s8(vget_low_s8(a1), vget_low_s8(b1)));
    s = vpadalq_s16(s, vmull_s8(vget_high_s8(a1), vget_high_s8(b1)));
    return vaddvq_s32(s);
}

/* Q4_1 rows against Q8_1 activations (f16 d, f16 s = d·Σq, int8 qs[32]). */
static inline void assay_neon_q4_1_q8_1(const uint8_t *w, long rowBytes, long rows, const uint8_t *a, long blocks, float *out) {
    for (long r = 0; r < rows; r++) {
        const uint8_t *p = w + r * rowBytes;
        float s = 0, mins = 0;
        for (long b = 0; b < blocks; b++) {
            const uint8_t *blk = p + 20 * b, *act = a + 36 * b;
            uint8x16_t q = vld1q_u8(blk + 4);
            int8x16_t lo = vreinterpretq_s8_u8(vandq_u8(q, vdupq_n_u8(0x0F))), hi = vreinterpretq_s8_u8(vshrq_n_u8(q, 4));
            int32_t dot = assay_neon_dot_s8x32(lo, hi, (const int8_t *)(act + 4));
            s = fmaf(assay_neon_half(blk) * assay_neon_half(act), (float)dot, s);
            mins = fmaf(assay_neon_half(blk + 2), assay_neon_half(act + 2), mins);
        }
        out[r] = s + mins;
    }
}

/* Q8_0 rows against Q8_0 activations. */
static inline void assay_neon_q8_0_q8_0(const uint8_t *w, long rowBytes, long rows, const uint8_t *a, long blocks, float *out) {
    for (long r = 0; r < rows; r++) {
        const uint8_t *p = w + r * rowBytes;
        float s = 0;
        for (long b = 0; b < blocks; b++) {
            const uint8_t *blk = p + 34 * b, *act = a + 34 * b;
            int32_t dot = assay_neon_dot_s8x32(vld1q_s8((const int8_t *)(blk + 2)), vld1q_s8((const int8_t *)(blk + 18)),
                                               (const int8_t *)(act + 2));
            s = fmaf(assay_neon_half(blk) * assay_neon_half(act), (float)dot, s);
        }
        out[r] = s;
    }
}

static inline void assay_neon_dequant(int q4, const uint8_t *w, long blocks, float *out) {
    float32x4_t v[8];
    for (long b = 0; b < blocks; b++, out += 32) {
        if (q4) {
            const uint8_t *blk = w + 20 * b;
            assay_neon_q4_1_values(blk + 4, v);
            float32x4_t d = vdupq_n_f32(assay_neon_half(blk)), m = vdupq_n_f32(assay_neon_half(blk + 2));
            for (int k = 0; k < 8; k++) vst1q_f32(out + 4 * k, vfmaq_f32(m, d, v[k]));
        } else {
            const uint8_t *blk = w + 34 * b;
            assay_neon_q8_0_values(blk + 2, v);
            float32x4_t d = vdupq_n_f32(assay_neon_half(blk));
            for (int k = 0; k < 8; k++) vst1q_f32(out + 4 * k, vmulq_f32(d, v[k]));
        }
    }
}
