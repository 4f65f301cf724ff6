/* `make check-neon`: the NEON kernels of Sources/CBLAS/shim_neon.h, built for aarch64 and run
   under qemu-aarch64, against Float64 sums of the same products and against the portable C path:
     - f32 / bf16 / f16 weight rows (assay_dot_rows for 1–8 activations, assay_dot_8rows), lengths
       that are not multiples of the vector width;
     - Q4_1 and Q8_0 rows against exact f32 activations for 1–7 activations per pass, each of which
       must get the same bits as through a pass of its own (batched decode relies on it);
     - Q4_1 × Q8_1 and Q8_0 × Q8_0 quantised activations (the integer block dots are exact);
     - dequantisation, bit-identical to the portable path (and so to ggml).
   The tolerance is relative to Σ|terms| (f32 accumulation over a few thousand products); a kernel
   that drops a block, a lane or a minimum term misses it by orders of magnitude. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../../Sources/CBLAS/shim.h"

#ifndef ASSAY_HAS_NEON
#error "neon-check is built for aarch64 with NEON (make check-neon)"
#endif

static int failures = 0, checks = 0;
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static double uniform(void) { /* [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / (double)(1ull << 52) * 2.0 - 1.0;
}

static uint16_t half_bits(float f) {
    _Float16 h = (_Float16)f;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}

static void check(const char *what, int index, double got, double want, double scale) {
    checks++;
    double tol = 2e-6 * scale + 1e-30;
    if (!(fabs(got - want) <= tol)) {
        failures++;
        if (failures <= 20) fprintf(stderr, "FAIL %s [%d]: got %.9g, want %.9g (tolerance %.3g)\n", what, index, got, want, tol);
    }
}

static void check_same(const char *what, int index, float got, float want) {
    checks++;
    if (memcmp(&got, &want, 4) != 0) {
        failures++;
        if (failures <= 20) fprintf(stderr, "FAIL %s [%d]: %.9g is not bit-identical to %.9g\n", what, index, got, want);
    }
}

static void check_dot_rows(void) {
    const long widths[] = {3, 8, 37, 576, 1003};
    for (int kind = 0; kind < 3; kind++) {
        for (int wi = 0; wi < 5; wi++) {
            long n = widths[wi];
            long es = kind == 0 ? 4 : 2;
            uint8_t *w = malloc(8 * n * es);
            float *x = malloc(8 * n * sizeof(float)), out[8];
            for (long j = 0; j < 8 * n; j++) {
                float v = (float)uniform();
                if (kind == 0) ((float *)w)[j] = v;
                else if (kind == 1) ((uint16_t *)w)[j] = assay_bf16_round(v);
                else ((uint16_t *)w)[j] = half_bits(v);
                x[j] = (float)uniform();
            }
            for (int m = 1; m <= 8; m++) {
                assay_dot_rows(w, kind, x, n, m, n, out);
                for (int i = 0; i < m; i++) {
                    double want = 0, scale = 0;
                    for (long j = 0; j < n; j++) { double t = assay_weight(w, kind, j) * x[i * n + j]; want += t; scale += fabs(t); }
                    check("dot_rows", kind * 1000 + m * 10 + i, out[i], want, scale);
                }
            }
            assay_dot_8rows(w, kind, n, x, n, out);
            for (int r = 0; r < 8; r++) {
                double want = 0, scale = 0;
                for (long j = 0; j < n; j++) { double t = assay_weight((const char *)w + r * n * es, kind, j) * x[j]; want += t; scale += fabs(t); }
                check("dot_8rows", kind * 1000 + r, out[r], want, scale);
            }
            free(w);
            free(x);
        }
    }
}

/* Random Q4_1 (20-byte) or Q8_0 (34-byte) rows. */
static uint8_t *random_rows(int q4, long rows, long blocks) {
    long bb = q4 ? 20 : 34;
    uint8_t *w = malloc(rows * blocks * bb);
    for (long b = 0; b < rows * blocks; b++) {
        uint8_t *blk = w + b * bb;
        uint16_t d = half_bits((float)(0.01 + 0.05 * fabs(uniform()))), m = half_bits((float)(-0.3 * fabs(uniform())));
        memcpy(blk, &d, 2);
        if (q4) memcpy(blk + 2, &m, 2);
        for (int j = q4 ? 4 : 2; j < bb; j++) blk[j] = (uint8_t)(256 * (uniform() + 1) / 2);
    }
    return w;
}

/* Weight j of a quantised row, in Float64. */
static double quant_weight(int q4, const uint8_t *row, long j) {
    if (q4) {
        const uint8_t *blk = row + 20 * (j / 32);
        int t = (int)(j % 32), q = t < 16 ? blk[4 + t] & 0x0F : blk[4 + t - 16] >> 4;
        return (double)assay_half(blk) * q + (double)assay_half(blk + 2);
    }
    const uint8_t *blk = row + 34 * (j / 32);
    return (double)assay_half(blk) * ((const int8_t *)(blk + 2))[j % 32];
}

static void check_quant_f32(void) {
    const long rows = 37, blocksList[] = {1, 2, 7, 18};
    for (int q4 = 0; q4 < 2; q4++) {
        for (int bi = 0; bi < 4; bi++) {
            long blocks = blocksList[bi], n = 32 * blocks, rowBytes = blocks * (q4 ? 20 : 34);
            uint8_t *w = random_rows(q4, rows, blocks);
            float *x = malloc(7 * n * sizeof(float)), *xs = malloc(7 * blocks * sizeof(float));
            float *out = malloc(7 * rows * sizeof(float)), *one = malloc(rows * sizeof(float));
            const float *xv[7], *xsv[7];
            for (int i = 0; i < 7; i++) {
                for (long j = 0; j < n; j++) x[i * n + j] = (float)uniform();
                for (long b = 0; b < blocks; b++) {
                    float s = 0;
                    for (int j = 0; j < 32; j++) s += x[i * n + 32 * b + j];
                    xs[i * blocks + b] = s;
                }
                xv[i] = x + i * n;
                xsv[i] = xs + i * blocks;
            }
            for (int m = 1; m <= 7; m++) {
                if (q4) assay_rows_q4_1_f32(ASSAY_LEVEL_NEON, w, rowBytes, rows, xv, xsv, m, blocks, out, rows);
                else assay_rows_q8_0_f32(ASSAY_LEVEL_NEON, w, rowBytes, rows, xv, m, blocks, out, rows);
                for (int i = 0; i < m; i++) {
                    if (q4) assay_rows_q4_1_f32(ASSAY_LEVEL_NEON, w, rowBytes, rows, xv + i, xsv + i, 1, blocks, one, rows);
                    else assay_rows_q8_0_f32(ASSAY_LEVEL_NEON, w, rowBytes, rows, xv + i, 1, blocks, one, rows);
                    for (long r = 0; r < rows; r++) {
                        double want = 0, scale = 0;
                        for (long j = 0; j < n; j++) { double t = quant_weight(q4, w + r * rowBytes, j) * x[i * n + j]; want += t; scale += fabs(t); }
                        check(q4 ? "q4_1_f32" : "q8_0_f32", (int)(m * 1000 + i * 100 + r), out[i * rows + r], want, scale);
                        check_same(q4 ? "q4_1_f32 batch" : "q8_0_f32 batch", (int)(m * 1000 + i * 100 + r), out[i * rows + r], one[r]);
                    }
                }
            }
            /* dequantisation: bit-identical to the portable path */
            float *dq = malloc(rows * n * sizeof(float)), *dp = malloc(rows * n * sizeof(float));
            assay_dequant_rows(ASSAY_LEVEL_NEON, q4, w, rowBytes, rows, blocks, dq);
            assay_portable_dequant_rows(0, q4, w, rowBytes, rows, blocks, dp);
            for (long t = 0; t < rows * n; t++) check_same(q4 ? "dequant q4_1" : "dequant q8_0", (int)t, dq[t], dp[t]);
            free(dq); free(dp); free(w); free(x); free(xs); free(out); free(one);
        }
    }
}

static void check_quant_int(void) {
    const long rows = 29, blocks = 9;
    for (int q4 = 0; q4 < 2; q4++) {
        long rowBytes = blocks * (q4 ? 20 : 34), ab = q4 ? 36 : 34;
        uint8_t *w = random_rows(q4, rows, blocks), *a = malloc(blocks * ab);
        for (long b = 0; b < blocks; b++) {
            uint8_t *act = a + b * ab;
            int8_t *qs = (int8_t *)(act + (q4 ? 4 : 2));
            int sum = 0;
            for (int j = 0; j < 32; j++) { qs[j] = (int8_t)(127 * uniform()); sum += qs[j]; }
            float d = (float)(0.001 + 0.01 * fabs(uniform()));
            uint16_t dh = half_bits(d), sh = half_bits(assay_half_bits_to_float(dh) * (float)sum);
            memcpy(act, &dh, 2);
            if (q4) memcpy(act + 2, &sh, 2);
        }
        float out[29];
        if (q4) assay_rows_q4_1_q8_1(ASSAY_LEVEL_NEON, w, rowBytes, rows, a, blocks, out);
        else assay_rows_q8_0_q8_0(ASSAY_LEVEL_NEON, w, rowBytes, rows, a, blocks, out);
        for (long r = 0; r < rows; r++) {
            double want = 0, scale = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = w + r * rowBytes + b * (q4 ? 20 : 34), *act = a + b * ab;
                const int8_t *aq = (const int8_t *)(act + (q4 ? 4 : 2));
                long dot = 0;
                for (int j = 0; j < 32; j++) {
                    int q = q4 ? (j < 16 ? blk[4 + j] & 0x0F : blk[4 + j - 16] >> 4) : ((const int8_t *)(blk + 2))[j];
                    dot += (long)q * aq[j];
                }
                double t = (double)assay_half(blk) * assay_half(act) * (double)dot;
                double u = q4 ? (double)assay_half(blk + 2) * assay_half(act + 2) : 0;
                want += t + u;
                scale += fabs(t) + fabs(u);
            }
            check(q4 ? "q4_1_q8_1" : "q8_0_q8_0", (int)r, out[r], want, scale);
        }
        free(w);
        free(a);
    }
}

int main(void) {
    if (assay_native_level() != ASSAY_LEVEL_NEON) { fprintf(stderr, "FAIL: assay_native_level() is not NEON\n"); return 1; }
    check_dot_rows();
    check_quant_f32();
    check_quant_int();
    if (failures) { fprintf(stderr, "neon-check: %d of %d checks failed\n", failures, checks); return 1; }
    printf("neon-check: %d checks passed (NEON against Float64 and the portable path)\n", checks);
    return 0;
}
