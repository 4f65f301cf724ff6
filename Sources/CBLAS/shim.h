#include <cblas.h>
#include <stdint.h>
#include <cpuid.h>
#include <immintrin.h>

/* Decode-time dot products over weights kept in their stored type (bf16 / f16 / f32), compiled
   for AVX2 + FMA (+ F16C) regardless of the flags the Swift code is built with, and chosen at run
   time when the CPU has them. A decode step is bound by how fast weight bytes stream from
   memory, so the widening has to be as cheap as the load. */

static inline int assay_cpu_has_avx2_fma_f16c(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, f16c = (c >> 29) & 1, avx = (c >> 28) & 1;
    if (!(fma && osxsave && f16c && avx)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return 0; /* OS saves XMM and YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1; /* AVX2 */
}

__attribute__((target("avx2,fma")))
static inline float assay_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static inline __m256 assay_load_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

__attribute__((target("avx2,fma,f16c")))
static inline __m256 assay_load_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}

/* out[i] = dot(w[0..n), x + i*ldx) for i < m (m <= 8): one pass over the weight row serves up
   to 8 activation rows. kind: 0 = f32, 1 = bf16, 2 = f16. */
__attribute__((target("avx2,fma,f16c")))
static inline void assay_dot_rows(const void *w, int kind, const float *x, long ldx, int m, long n, float *out) {
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    long j = 0;
    if (m == 1) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; j + 32 <= n; j += 32) {
            __m256 w0, w1, w2, w3;
            if (kind == 1) {
                const uint16_t *p = (const uint16_t *)w + j;
                w0 = assay_load_bf16(p); w1 = assay_load_bf16(p + 8); w2 = assay_load_bf16(p + 16); w3 = assay_load_bf16(p + 24);
            } else if (kind == 2) {
                const uint16_t *p = (const uint16_t *)w + j;
                w0 = assay_load_f16(p); w1 = assay_load_f16(p + 8); w2 = assay_load_f16(p + 16); w3 = assay_load_f16(p + 24);
            } else {
                const float *p = (const float *)w + j;
                w0 = _mm256_loadu_ps(p); w1 = _mm256_loadu_ps(p + 8); w2 = _mm256_loadu_ps(p + 16); w3 = _mm256_loadu_ps(p + 24);
            }
            a0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + j), a0);
            a1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + j + 8), a1);
            a2 = _mm256_fmadd_ps(w2, _mm256_loadu_ps(x + j + 16), a2);
            a3 = _mm256_fmadd_ps(w3, _mm256_loadu_ps(x + j + 24), a3);
        }
        acc[0] = _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3));
    }
    for (; j + 8 <= n; j += 8) {
        __m256 wv = kind == 1 ? assay_load_bf16((const uint16_t *)w + j)
                  : kind == 2 ? assay_load_f16((const uint16_t *)w + j)
                              : _mm256_loadu_ps((const float *)w + j);
        for (int i = 0; i < m; i++) acc[i] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + i * ldx + j), acc[i]);
    }
    for (int i = 0; i < m; i++) {
        float s = assay_hsum256(acc[i]);
        for (long k = j; k < n; k++) {
            float wk;
            if (kind == 1) { uint32_t bits = (uint32_t)((const uint16_t *)w)[k] << 16; __builtin_memcpy(&wk, &bits, 4); }
            else if (kind == 2) { wk = _cvtsh_ss(((const uint16_t *)w)[k]); }
            else wk = ((const float *)w)[k];
            s += wk * x[i * ldx + k];
        }
        out[i] = s;
    }
}

/* ---- bf16 × bf16 → f32 matrix product with AVX512-BF16 (vdpbf16ps) -------------------------
   For prefill and vision over bf16 weights when the caller opted into bf16 matmuls: OpenBLAS as
   shipped by Debian has no sbgemm. C[m, n] = Σ_k A[m, k]·B[n, k] for columns n0 ≤ n < n1.
   A: activations already rounded to bf16, rows padded with zeros to a multiple of 8 and K to an
   even count (lda elements per row). B: weights [N, K] row-major (ldb = K). Bp: scratch of
   256·32 uint32 (one packed 32-column × 512-k panel). */

/* AVX512F/BW/VL with the OS saving ZMM state; *vnni tells whether AVX512-VNNI is there too. */
static inline int assay_cpu_has_avx512(int *vnni) {
    unsigned a, b, c, d;
    *vnni = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0; /* XMM, YMM, opmask and ZMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    *vnni = (c >> 11) & 1;
    return f && bw && vl;
}

static inline int assay_cpu_has_avx512_bf16(void) {
    int vnni;
    if (!assay_cpu_has_avx512(&vnni)) return 0;
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return 0;
    return (a >> 5) & 1; /* AVX512_BF16 */
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline void assay_bf16_gemm_cols(const uint16_t *A, long lda, long M, const uint16_t *B, long K,
                                        long n0, long n1, float *C, long ldc, uint32_t *Bp) {
    const long KC = 512;
    long Mpad = (M + 7) & ~7L;
    for (long nt = n0; nt < n1; nt += 32) {
        long nw = n1 - nt < 32 ? n1 - nt : 32;
        __mmask16 mask0 = nw >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nw) - 1);
        __mmask16 mask1 = nw > 16 ? (nw >= 32 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nw - 16)) - 1)) : 0;
        for (long k0 = 0; k0 < K; k0 += KC) {
            long kw = K - k0 < KC ? K - k0 : KC;
            long kp = (kw + 1) / 2;
            for (long j = 0; j < 32; j++) {
                if (j < nw) {
                    const uint16_t *src = B + (nt + j) * K + k0;
                    for (long p = 0; p < kw / 2; p++) {
                        uint32_t v;
                        __builtin_memcpy(&v, src + 2 * p, 4);
                        Bp[p * 32 + j] = v;
                    }
                    if (kw & 1) Bp[(kp - 1) * 32 + j] = src[kw - 1];
                } else {
                    for (long p = 0; p < kp; p++) Bp[p * 32 + j] = 0;
                }
            }
            for (long m = 0; m < Mpad; m += 8) {
                __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
                __m512 c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
                const uint16_t *a = A + m * lda + k0;
                for (long p = 0; p < kp; p++) {
                    __m512bh b0 = (__m512bh)_mm512_loadu_si512((const void *)(Bp + p * 32));
                    __m512bh b1 = (__m512bh)_mm512_loadu_si512((const void *)(Bp + p * 32 + 16));
                    int32_t s;
#define ASSAY_ROW(r, x0, x1) \
                    __builtin_memcpy(&s, a + (r) * lda + 2 * p, 4); \
                    { __m512bh av = (__m512bh)_mm512_set1_epi32(s); x0 = _mm512_dpbf16_ps(x0, av, b0); x1 = _mm512_dpbf16_ps(x1, av, b1); }
                    ASSAY_ROW(0, c00, c01) ASSAY_ROW(1, c10, c11) ASSAY_ROW(2, c20, c21) ASSAY_ROW(3, c30, c31)
                    ASSAY_ROW(4, c40, c41) ASSAY_ROW(5, c50, c51) ASSAY_ROW(6, c60, c61) ASSAY_ROW(7, c70, c71)
#undef ASSAY_ROW
                }
                __m512 rows[16] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51, c60, c61, c70, c71};
                for (int r = 0; r < 8 && m + r < M; r++) {
                    float *dst = C + (m + r) * ldc + nt;
                    __m512 v0 = rows[2 * r], v1 = rows[2 * r + 1];
                    if (k0 > 0) {
                        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(mask0, dst));
                        if (mask1) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(mask1, dst + 16));
                    }
                    _mm512_mask_storeu_ps(dst, mask0, v0);
                    if (mask1) _mm512_mask_storeu_ps(dst + 16, mask1, v1);
                }
            }
        }
    }
}

/* ---- Quantised row kernels for Q4_1 and Q8_0 (the embedded default model's formats) ----------
   One call computes out[r] = row_r · x for `rows` consecutive weight rows, straight from the ggml
   blocks. Two activation paths:
     *_f32:  exact Float activations in natural order; xs[b] = Σ of block b's 32 values (for Q4_1's
             minimum term). Σ_j (d·q_j + m)·x_j is computed as d·Σ q_j·x_j + m·Σ x_j per block.
     *_q8_1 / *_q8_0: activations quantised as ggml does (block_q8_1: f16 d, f16 s, int8 qs[32];
             block_q8_0: f16 d, int8 qs[32]); each block's integer dot is exact, as in ggml.
   `level`: 2 = AVX512F/BW/VL (+ VNNI when `vnni`), 1 = AVX2/FMA/F16C. Callers check the level
   first (assay_native_level); level 0 never reaches these functions. */

/* 0: no native kernels, 1: AVX2, 2: AVX512; bit 4 set when AVX512-VNNI is there too. */
static inline int assay_native_level(void) {
    int vnni = 0;
    if (!assay_cpu_has_avx2_fma_f16c()) return 0;
    if (assay_cpu_has_avx512(&vnni)) return 2 | (vnni ? 4 : 0);
    return 1;
}

__attribute__((target("f16c")))
static inline float assay_half(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

/* The 32 quants of a block as float vectors, per vector width: 2 × 16 lanes or 4 × 8 lanes, in
   natural order (Q4_1: the 16 low nibbles are weights 0–15, the high nibbles 16–31). */
__attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
static inline void assay_q4_1_values_512(const uint8_t *qs, __m512 *v) {
    const __m128i mask = _mm_set1_epi8(0x0F);
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    v[0] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(q, mask)));
    v[1] = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), mask)));
}

__attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
static inline void assay_q8_0_values_512(const uint8_t *qs, __m512 *v) {
    v[0] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)qs)));
    v[1] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(qs + 16))));
}

__attribute__((target("avx2,fma,f16c")))
static inline void assay_q4_1_values_256(const uint8_t *qs, __m256 *v) {
    const __m128i mask = _mm_set1_epi8(0x0F);
    __m128i q = _mm_loadu_si128((const __m128i *)qs);
    __m128i lo = _mm_and_si128(q, mask), hi = _mm_and_si128(_mm_srli_epi16(q, 4), mask);
    v[0] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo));
    v[1] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)));
    v[2] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi));
    v[3] = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)));
}

__attribute__((target("avx2,fma,f16c")))
static inline void assay_q8_0_values_256(const uint8_t *qs, __m256 *v) {
    for (int k = 0; k < 4; k++) v[k] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8 * k))));
}

__attribute__((target("avx512f,avx512bw,avx512vl,fma,f16c")))
static inline float assay_hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

/* Row kernels and dequantisation, written once and instantiated per vector width W (512 or 256).
   Rows: Σ_j (d·q_j + m)·x_j = d·Σ q_j·x_j + m·Σ x_j per block; two accumulators so consecutive
   blocks do not wait on each other's additions. Dequantisation: fma(d, q, m) rounds once, as
   ggml's d·q + m does (d·q is exact in float: an 11-bit significand times at most 8 bits), so the
   values are bit-identical to dequantize_row_q4_1 / _q8_0. */
#define ASSAY_FLOAT_KERNELS(W, TARGET, VEC, LANES, ZERO, SET1, LOADU, STOREU, MUL, ADD, FMADD, HSUM)                \
    /* Σ q_j·x_j of one block, as a vector of partial sums. */                                                    \
    __attribute__((target(TARGET)))                                                                               \
    static inline VEC assay_dot_##W(const VEC *v, const float *xb) {                                             \
        VEC t = MUL(v[0], LOADU(xb));                                                                             \
        for (int k = 1; k < 32 / LANES; k++) t = FMADD(v[k], LOADU(xb + LANES * k), t);                           \
        return t;                                                                                                 \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static inline VEC assay_q4_1_block_##W(const uint8_t *blk, const float *xb) {                                \
        VEC v[32 / LANES];                                                                                        \
        assay_q4_1_values_##W(blk + 4, v);                                                                        \
        return MUL(SET1(assay_half(blk)), assay_dot_##W(v, xb));                                                  \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static inline VEC assay_q8_0_block_##W(const uint8_t *blk, const float *xb) {                                \
        VEC v[32 / LANES];                                                                                        \
        assay_q8_0_values_##W(blk + 2, v);                                                                        \
        return MUL(SET1(assay_half(blk)), assay_dot_##W(v, xb));                                                  \
    }                                                                                                             \
    /* Rows of blocks of `size` bytes; even and odd blocks go to separate accumulators. */                       \
    __attribute__((target(TARGET)))                                                                               \
    static void assay_q4_1_f32_##W(const uint8_t *w, long rowBytes, long rows, const float *x, const float *xs,  \
                                   long blocks, float *out) {                                                     \
        for (long r = 0; r < rows; r++) {                                                                         \
            const uint8_t *p = w + r * rowBytes;                                                                  \
            VEC acc0 = ZERO(), acc1 = ZERO();                                                                     \
            float mins = 0;                                                                                       \
            long b = 0;                                                                                           \
            for (; b + 1 < blocks; b += 2) {                                                                      \
                acc0 = ADD(acc0, assay_q4_1_block_##W(p + 20 * b, x + 32 * b));                                   \
                acc1 = ADD(acc1, assay_q4_1_block_##W(p + 20 * b + 20, x + 32 * b + 32));                         \
            }                                                                                                     \
            if (b < blocks) acc0 = ADD(acc0, assay_q4_1_block_##W(p + 20 * b, x + 32 * b));                     \
            for (b = 0; b < blocks; b++) mins += assay_half(p + 20 * b + 2) * xs[b];                              \
            out[r] = HSUM(ADD(acc0, acc1)) + mins;                                                                \
        }                                                                                                         \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static void assay_q8_0_f32_##W(const uint8_t *w, long rowBytes, long rows, const float *x, long blocks,      \
                                   float *out) {                                                                  \
        for (long r = 0; r < rows; r++) {                                                                         \
            const uint8_t *p = w + r * rowBytes;                                                                  \
            VEC acc0 = ZERO(), acc1 = ZERO();                                                                     \
            long b = 0;                                                                                           \
            for (; b + 1 < blocks; b += 2) {                                                                      \
                acc0 = ADD(acc0, assay_q8_0_block_##W(p + 34 * b, x + 32 * b));                                   \
                acc1 = ADD(acc1, assay_q8_0_block_##W(p + 34 * b + 34, x + 32 * b + 32));                         \
            }                                                                                                     \
            if (b < blocks) acc0 = ADD(acc0, assay_q8_0_block_##W(p + 34 * b, x + 32 * b));                     \
            out[r] = HSUM(ADD(acc0, acc1));                                                                       \
        }                                                                                                         \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static void assay_dequant_q4_1_##W(const uint8_t *w, long blocks, float *out) {                               \
        VEC v[32 / LANES];                                                                                        \
        for (long b = 0; b < blocks; b++, w += 20, out += 32) {                                                   \
            assay_q4_1_values_##W(w + 4, v);                                                                      \
            VEC d = SET1(assay_half(w)), m = SET1(assay_half(w + 2));                                             \
            for (int k = 0; k < 32 / LANES; k++) STOREU(out + LANES * k, FMADD(d, v[k], m));                      \
        }                                                                                                         \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static void assay_dequant_q8_0_##W(const uint8_t *w, long blocks, float *out) {                               \
        VEC v[32 / LANES];                                                                                        \
        for (long b = 0; b < blocks; b++, w += 34, out += 32) {                                                   \
            assay_q8_0_values_##W(w + 2, v);                                                                      \
            VEC d = SET1(assay_half(w));                                                                          \
            for (int k = 0; k < 32 / LANES; k++) STOREU(out + LANES * k, MUL(d, v[k]));                           \
        }                                                                                                         \
    }

ASSAY_FLOAT_KERNELS(512, "avx512f,avx512bw,avx512vl,fma,f16c", __m512, 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps,
                    _mm512_storeu_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_fmadd_ps, assay_hsum512)
ASSAY_FLOAT_KERNELS(256, "avx2,fma,f16c", __m256, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps,
                    _mm256_storeu_ps, _mm256_mul_ps, _mm256_add_ps, _mm256_fmadd_ps, assay_hsum256)

/* u8 × s8 dot products of 32 bytes, summed in groups of four into 8 int32 lanes. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
static inline __m256i assay_dot_us8_vnni(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }

__attribute__((target("avx2,fma,f16c")))
static inline __m256i assay_dot_us8_avx2(__m256i u, __m256i s) {
    /* maddubs pairs stay below 2·255·127 only for Q4 (≤ 15) and |s| ≤ 127 operands: no saturation. */
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

#define ASSAY_Q4_1_Q8_1(NAME, TARGET, DOT)                                                                       \
    __attribute__((target(TARGET)))                                                                             \
    static void NAME(const uint8_t *w, long rowBytes, long rows, const uint8_t *a, long blocks, float *out) {   \
        const __m128i mask = _mm_set1_epi8(0x0F);                                                               \
        for (long r = 0; r < rows; r++) {                                                                       \
            const uint8_t *p = w + r * rowBytes;                                                                \
            __m256 acc = _mm256_setzero_ps();                                                                   \
            float mins = 0;                                                                                     \
            for (long b = 0; b < blocks; b++) {                                                                 \
                const uint8_t *blk = p + 20 * b, *act = a + 36 * b;                                             \
                __m128i q = _mm_loadu_si128((const __m128i *)(blk + 4));                                        \
                __m256i u = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), mask), _mm_and_si128(q, mask)); \
                __m256i dot = DOT(u, _mm256_loadu_si256((const __m256i *)(act + 4)));                           \
                acc = _mm256_fmadd_ps(_mm256_set1_ps(assay_half(blk) * assay_half(act)), _mm256_cvtepi32_ps(dot), acc); \
                mins += assay_half(blk + 2) * assay_half(act + 2);                                              \
            }                                                                                                   \
            out[r] = assay_hsum256(acc) + mins;                                                                 \
        }                                                                                                       \
    }

#define ASSAY_Q8_0_Q8_0(NAME, TARGET, DOT)                                                                      \
    __attribute__((target(TARGET)))                                                                             \
    static void NAME(const uint8_t *w, long rowBytes, long rows, const uint8_t *a, long blocks, float *out) {   \
        for (long r = 0; r < rows; r++) {                                                                       \
            const uint8_t *p = w + r * rowBytes;                                                                \
            __m256 acc = _mm256_setzero_ps();                                                                   \
            for (long b = 0; b < blocks; b++) {                                                                 \
                const uint8_t *blk = p + 34 * b, *act = a + 34 * b;                                             \
                __m256i wq = _mm256_loadu_si256((const __m256i *)(blk + 2));                                    \
                __m256i aq = _mm256_loadu_si256((const __m256i *)(act + 2));                                    \
                /* |w| as unsigned times a with w's sign: the u8 × s8 instruction computes w·a. */             \
                __m256i dot = DOT(_mm256_sign_epi8(wq, wq), _mm256_sign_epi8(aq, wq));                          \
                acc = _mm256_fmadd_ps(_mm256_set1_ps(assay_half(blk) * assay_half(act)), _mm256_cvtepi32_ps(dot), acc); \
            }                                                                                                   \
            out[r] = assay_hsum256(acc);                                                                        \
        }                                                                                                       \
    }

ASSAY_Q4_1_Q8_1(assay_q4_1_q8_1_vnni, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", assay_dot_us8_vnni)
ASSAY_Q4_1_Q8_1(assay_q4_1_q8_1_avx2, "avx2,fma,f16c", assay_dot_us8_avx2)
ASSAY_Q8_0_Q8_0(assay_q8_0_q8_0_vnni, "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", assay_dot_us8_vnni)
ASSAY_Q8_0_Q8_0(assay_q8_0_q8_0_avx2, "avx2,fma,f16c", assay_dot_us8_avx2)

/* The entry points Swift calls; `level` is assay_native_level()'s value (non-zero). */
static inline void assay_rows_q4_1_f32(int level, const void *w, long rowBytes, long rows, const float *x, const float *xs, long blocks, float *out) {
    if (level & 2) assay_q4_1_f32_512((const uint8_t *)w, rowBytes, rows, x, xs, blocks, out);
    else assay_q4_1_f32_256((const uint8_t *)w, rowBytes, rows, x, xs, blocks, out);
}
static inline void assay_rows_q8_0_f32(int level, const void *w, long rowBytes, long rows, const float *x, long blocks, float *out) {
    if (level & 2) assay_q8_0_f32_512((const uint8_t *)w, rowBytes, rows, x, blocks, out);
    else assay_q8_0_f32_256((const uint8_t *)w, rowBytes, rows, x, blocks, out);
}
static inline void assay_rows_q4_1_q8_1(int level, const void *w, long rowBytes, long rows, const void *a, long blocks, float *out) {
    if (level & 4) assay_q4_1_q8_1_vnni((const uint8_t *)w, rowBytes, rows, (const uint8_t *)a, blocks, out);
    else assay_q4_1_q8_1_avx2((const uint8_t *)w, rowBytes, rows, (const uint8_t *)a, blocks, out);
}
static inline void assay_rows_q8_0_q8_0(int level, const void *w, long rowBytes, long rows, const void *a, long blocks, float *out) {
    if (level & 4) assay_q8_0_q8_0_vnni((const uint8_t *)w, rowBytes, rows, (const uint8_t *)a, blocks, out);
    else assay_q8_0_q8_0_avx2((const uint8_t *)w, rowBytes, rows, (const uint8_t *)a, blocks, out);
}

/* `rows` rows of `rowBytes` bytes each (whole blocks) into rows of 32·blocks floats. */
static inline void assay_dequant_rows(int level, int q4_1, const void *w, long rowBytes, long rows, long blocks, float *out) {
    for (long r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)w + r * rowBytes;
        float *dst = out + r * 32 * blocks;
        if (q4_1) {
            if (level & 2) assay_dequant_q4_1_512(src, blocks, dst); else assay_dequant_q4_1_256(src, blocks, dst);
        } else {
            if (level & 2) assay_dequant_q8_0_512(src, blocks, dst); else assay_dequant_q8_0_256(src, blocks, dst);
        }
    }
}
