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
