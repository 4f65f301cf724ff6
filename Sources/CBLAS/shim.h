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

static inline int assay_cpu_has_avx512_bf16(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !((c >> 27) & 1)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xE6) != 0xE6) return 0; /* XMM, YMM, opmask and ZMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
    if (!(f && bw && vl)) return 0;
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
