/* The trainer's element-wise rows (Sources/VLMTraining): attention softmax forward and backward,
   the vocabulary log-softmax, SwiGLU forward and backward, with a vectorised e^x on x86 and plain
   C elsewhere. Included at the end of shim.h.

   `level`: 2 = AVX512F, 1 = AVX2 + FMA, 0 = plain C (expf). The vector e^x has a relative error
   below 2e-7 on the range softmax uses (x ≤ 0), about one float rounding beside expf: the
   per-token log-probs of a pass move by ~1e-7, far inside the GRPO goldens' tolerances. */
#ifndef ASSAY_SHIM_TRAIN_H
#define ASSAY_SHIM_TRAIN_H

#include <math.h>

/* Plain C: row[0..<limit] = softmax(row[0..<limit]); row[limit..<total] = 0. */
static inline void assay_softmax_row_c(float *row, long limit, long total) {
    float mx = -INFINITY;
    for (long j = 0; j < limit; j++) mx = row[j] > mx ? row[j] : mx;
    float sum = 0;
    for (long j = 0; j < limit; j++) { float e = expf(row[j] - mx); row[j] = e; sum += e; }
    float inv = 1 / sum;
    for (long j = 0; j < limit; j++) row[j] *= inv;
    for (long j = limit; j < total; j++) row[j] = 0;
}

/* Plain C: d[j] = p[j]·(d[j] − Σ_i d[i]·p[i])·scale for j < limit; d[limit..<total] = 0. */
static inline void assay_softmax_grad_row_c(const float *p, float *d, long limit, long total, float scale) {
    float dot = 0;
    for (long j = 0; j < limit; j++) dot += d[j] * p[j];
    for (long j = 0; j < limit; j++) d[j] = p[j] * (d[j] - dot) * scale;
    for (long j = limit; j < total; j++) d[j] = 0;
}

/* Plain C rows of the vocabulary log-softmax (PolicyModel.logSoftmaxGather): z[j] /= t, returning
   the maximum; Σ e^(z[j] − shift); z[j] = g · e^(z[j] − shift). */
static inline float assay_div_max_row_c(float *z, long n, float t) {
    float mx = -INFINITY;
    for (long j = 0; j < n; j++) { z[j] = z[j] / t; mx = z[j] > mx ? z[j] : mx; }
    return mx;
}

static inline float assay_sum_exp_row_c(const float *z, long n, float shift) {
    float sum = 0;
    for (long j = 0; j < n; j++) sum += expf(z[j] - shift);
    return sum;
}

static inline void assay_exp_scale_row_c(float *z, long n, float shift, float g) {
    for (long j = 0; j < n; j++) z[j] = g * expf(z[j] - shift);
}

/* Plain C SwiGLU: a = silu(g)·u; backward with s = σ(g): dg = da·u·s·(1 + g(1 − s)), du = da·silu(g). */
static inline void assay_swiglu_row_c(const float *g, const float *u, long n, float *a) {
    for (long j = 0; j < n; j++) a[j] = g[j] / (1 + expf(-g[j])) * u[j];
}

static inline void assay_swiglu_grad_row_c(const float *da, const float *g, const float *u, long n, float *dg, float *du) {
    for (long j = 0; j < n; j++) {
        float s = 1 / (1 + expf(-g[j]));
        float silu = g[j] * s;
        float d = da[j];
        dg[j] = d * u[j] * s * (1 + g[j] * (1 - s));
        du[j] = d * silu;
    }
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* e^x for 8 lanes, x ≤ 0 in use: x = n·ln2 + r (ln2 in two parts so n·ln2_hi is exact), a
   degree-6 Taylor polynomial for e^r (|r| ≤ ln2/2), 2^n built in the exponent field; 0 below
   -87.33 (where 2^n would leave the normal range), as expf's result rounds to 0 beside a row sum ≥ 1. */
__attribute__((target("avx2,fma")))
static inline __m256 assay_exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.37626f)), lo);
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187045e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx2,fma")))
static inline float assay_hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

__attribute__((target("avx2,fma")))
static inline void assay_softmax_row_256(float *row, long limit, long total) {
    long j = 0;
    __m256 vmx = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= limit; j += 8) vmx = _mm256_max_ps(vmx, _mm256_loadu_ps(row + j));
    float mx = assay_hmax256(vmx);
    for (; j < limit; j++) mx = row[j] > mx ? row[j] : mx;
    __m256 m8 = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= limit; j += 8) {
        __m256 e = assay_exp256(_mm256_sub_ps(_mm256_loadu_ps(row + j), m8));
        _mm256_storeu_ps(row + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = assay_hsum256(vs);
    for (; j < limit; j++) {
        float e = _mm256_cvtss_f32(assay_exp256(_mm256_set1_ps(row[j] - mx)));
        row[j] = e;
        sum += e;
    }
    float inv = 1 / sum;
    __m256 i8 = _mm256_set1_ps(inv);
    for (j = 0; j + 8 <= limit; j += 8) _mm256_storeu_ps(row + j, _mm256_mul_ps(_mm256_loadu_ps(row + j), i8));
    for (; j < limit; j++) row[j] *= inv;
    for (j = limit; j < total; j++) row[j] = 0;
}

__attribute__((target("avx2,fma")))
static inline void assay_softmax_grad_row_256(const float *p, float *d, long limit, long total, float scale) {
    long j = 0;
    __m256 acc = _mm256_setzero_ps();
    for (; j + 8 <= limit; j += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(d + j), _mm256_loadu_ps(p + j), acc);
    float dot = assay_hsum256(acc);
    for (; j < limit; j++) dot += d[j] * p[j];
    __m256 dot8 = _mm256_set1_ps(dot), s8 = _mm256_set1_ps(scale);
    for (j = 0; j + 8 <= limit; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(d + j), dot8));
        _mm256_storeu_ps(d + j, _mm256_mul_ps(v, s8));
    }
    for (; j < limit; j++) d[j] = p[j] * (d[j] - dot) * scale;
    for (j = limit; j < total; j++) d[j] = 0;
}

/* The AVX512 forms use the same polynomial through assay_exp512 (shim.h). */
__attribute__((target("avx512f")))
static inline void assay_softmax_row_512(float *row, long limit, long total) {
    long j = 0;
    __m512 vmx = _mm512_set1_ps(-INFINITY);
    for (; j + 16 <= limit; j += 16) vmx = _mm512_max_ps(vmx, _mm512_loadu_ps(row + j));
    if (j < limit) vmx = _mm512_mask_max_ps(vmx, (__mmask16)((1u << (limit - j)) - 1), vmx, _mm512_maskz_loadu_ps((__mmask16)((1u << (limit - j)) - 1), row + j));
    float mx = _mm512_reduce_max_ps(vmx);
    __m512 m16 = _mm512_set1_ps(mx), vs = _mm512_setzero_ps();
    for (j = 0; j + 16 <= limit; j += 16) {
        __m512 e = assay_exp512(_mm512_sub_ps(_mm512_loadu_ps(row + j), m16));
        _mm512_storeu_ps(row + j, e);
        vs = _mm512_add_ps(vs, e);
    }
    if (j < limit) {
        __mmask16 k = (__mmask16)((1u << (limit - j)) - 1);
        __m512 e = assay_exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), m16));
        _mm512_mask_storeu_ps(row + j, k, e);
        vs = _mm512_mask_add_ps(vs, k, vs, e);
    }
    float inv = 1 / _mm512_reduce_add_ps(vs);
    __m512 i16 = _mm512_set1_ps(inv);
    for (j = 0; j + 16 <= limit; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), i16));
    if (j < limit) {
        __mmask16 k = (__mmask16)((1u << (limit - j)) - 1);
        _mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), i16));
    }
    for (j = limit; j < total; j++) row[j] = 0;
}

__attribute__((target("avx512f")))
static inline void assay_softmax_grad_row_512(const float *p, float *d, long limit, long total, float scale) {
    long j = 0;
    __m512 acc = _mm512_setzero_ps();
    for (; j + 16 <= limit; j += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(d + j), _mm512_loadu_ps(p + j), acc);
    if (j < limit) {
        __mmask16 k = (__mmask16)((1u << (limit - j)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, d + j), _mm512_maskz_loadu_ps(k, p + j), acc);
    }
    float dot = _mm512_reduce_add_ps(acc);
    __m512 dot16 = _mm512_set1_ps(dot), s16 = _mm512_set1_ps(scale);
    for (j = 0; j + 16 <= limit; j += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(p + j), _mm512_sub_ps(_mm512_loadu_ps(d + j), dot16));
        _mm512_storeu_ps(d + j, _mm512_mul_ps(v, s16));
    }
    if (j < limit) {
        __mmask16 k = (__mmask16)((1u << (limit - j)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + j), _mm512_sub_ps(_mm512_maskz_loadu_ps(k, d + j), dot16));
        _mm512_mask_storeu_ps(d + j, k, _mm512_mul_ps(v, s16));
    }
    for (j = limit; j < total; j++) d[j] = 0;
}

static inline void assay_softmax_row(int level, float *row, long limit, long total) {
    if (level >= 2) assay_softmax_row_512(row, limit, total);
    else if (level == 1) assay_softmax_row_256(row, limit, total);
    else assay_softmax_row_c(row, limit, total);
}

static inline void assay_softmax_grad_row(int level, const float *p, float *d, long limit, long total, float scale) {
    if (level >= 2) assay_softmax_grad_row_512(p, d, limit, total, scale);
    else if (level == 1) assay_softmax_grad_row_256(p, d, limit, total, scale);
    else assay_softmax_grad_row_c(p, d, limit, total, scale);
}

__attribute__((target("avx2,fma")))
static inline float assay_div_max_row_256(float *z, long n, float t) {
    long j = 0;
    __m256 t8 = _mm256_set1_ps(t), vmx = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_div_ps(_mm256_loadu_ps(z + j), t8);
        _mm256_storeu_ps(z + j, v);
        vmx = _mm256_max_ps(vmx, v);
    }
    float mx = assay_hmax256(vmx);
    for (; j < n; j++) { z[j] = z[j] / t; mx = z[j] > mx ? z[j] : mx; }
    return mx;
}

__attribute__((target("avx2,fma")))
static inline float assay_sum_exp_row_256(const float *z, long n, float shift) {
    long j = 0;
    __m256 s8 = _mm256_set1_ps(shift), a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (; j + 16 <= n; j += 16) {
        a0 = _mm256_add_ps(a0, assay_exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j), s8)));
        a1 = _mm256_add_ps(a1, assay_exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j + 8), s8)));
    }
    for (; j + 8 <= n; j += 8) a0 = _mm256_add_ps(a0, assay_exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j), s8)));
    float sum = assay_hsum256(_mm256_add_ps(a0, a1));
    for (; j < n; j++) sum += _mm256_cvtss_f32(assay_exp256(_mm256_set1_ps(z[j] - shift)));
    return sum;
}

__attribute__((target("avx2,fma")))
static inline void assay_exp_scale_row_256(float *z, long n, float shift, float g) {
    long j = 0;
    __m256 s8 = _mm256_set1_ps(shift), g8 = _mm256_set1_ps(g);
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(z + j, _mm256_mul_ps(g8, assay_exp256(_mm256_sub_ps(_mm256_loadu_ps(z + j), s8))));
    for (; j < n; j++) z[j] = g * _mm256_cvtss_f32(assay_exp256(_mm256_set1_ps(z[j] - shift)));
}

/* Level 2 (AVX512) runs the 8-lane code for the vocabulary rows too. */
static inline float assay_div_max_row(int level, float *z, long n, float t) {
    return level >= 1 ? assay_div_max_row_256(z, n, t) : assay_div_max_row_c(z, n, t);
}

static inline float assay_sum_exp_row(int level, const float *z, long n, float shift) {
    return level >= 1 ? assay_sum_exp_row_256(z, n, shift) : assay_sum_exp_row_c(z, n, shift);
}

static inline void assay_exp_scale_row(int level, float *z, long n, float shift, float g) {
    if (level >= 1) assay_exp_scale_row_256(z, n, shift, g);
    else assay_exp_scale_row_c(z, n, shift, g);
}

__attribute__((target("avx2,fma")))
static inline void assay_swiglu_row_256(const float *g, const float *u, long n, float *a) {
    long j = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 gv = _mm256_loadu_ps(g + j);
        __m256 e = assay_exp256(_mm256_sub_ps(zero, gv));
        _mm256_storeu_ps(a + j, _mm256_mul_ps(_mm256_div_ps(gv, _mm256_add_ps(one, e)), _mm256_loadu_ps(u + j)));
    }
    for (; j < n; j++) a[j] = g[j] / (1 + _mm256_cvtss_f32(assay_exp256(_mm256_set1_ps(-g[j])))) * u[j];
}

__attribute__((target("avx2,fma")))
static inline void assay_swiglu_grad_row_256(const float *da, const float *g, const float *u, long n, float *dg, float *du) {
    long j = 0;
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 gv = _mm256_loadu_ps(g + j), d = _mm256_loadu_ps(da + j);
        __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, assay_exp256(_mm256_sub_ps(zero, gv))));
        __m256 silu = _mm256_mul_ps(gv, s);
        __m256 t = _mm256_add_ps(one, _mm256_mul_ps(gv, _mm256_sub_ps(one, s)));
        _mm256_storeu_ps(dg + j, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(d, _mm256_loadu_ps(u + j)), s), t));
        _mm256_storeu_ps(du + j, _mm256_mul_ps(d, silu));
    }
    for (; j < n; j++) {
        float s = 1 / (1 + _mm256_cvtss_f32(assay_exp256(_mm256_set1_ps(-g[j]))));
        float silu = g[j] * s;
        float d = da[j];
        dg[j] = d * u[j] * s * (1 + g[j] * (1 - s));
        du[j] = d * silu;
    }
}

static inline void assay_swiglu_row(int level, const float *g, const float *u, long n, float *a) {
    if (level >= 1) assay_swiglu_row_256(g, u, n, a);
    else assay_swiglu_row_c(g, u, n, a);
}

static inline void assay_swiglu_grad_row(int level, const float *da, const float *g, const float *u, long n, float *dg, float *du) {
    if (level >= 1) assay_swiglu_grad_row_256(da, g, u, n, dg, du);
    else assay_swiglu_grad_row_c(da, g, u, n, dg, du);
}

#else /* not x86: plain C (level is ignored) */

static inline void assay_softmax_row(int level, float *row, long limit, long total) {
    (void)level;
    assay_softmax_row_c(row, limit, total);
}

static inline void assay_softmax_grad_row(int level, const float *p, float *d, long limit, long total, float scale) {
    (void)level;
    assay_softmax_grad_row_c(p, d, limit, total, scale);
}

static inline float assay_div_max_row(int level, float *z, long n, float t) { (void)level; return assay_div_max_row_c(z, n, t); }
static inline float assay_sum_exp_row(int level, const float *z, long n, float shift) { (void)level; return assay_sum_exp_row_c(z, n, shift); }
static inline void assay_exp_scale_row(int level, float *z, long n, float shift, float g) { (void)level; assay_exp_scale_row_c(z, n, shift, g); }

static inline void assay_swiglu_row(int level, const float *g, const float *u, long n, float *a) { (void)level; assay_swiglu_row_c(g, u, n, a); }
static inline void assay_swiglu_grad_row(int level, const float *da, const float *g, const float *u, long n, float *dg, float *du) { (void)level; assay_swiglu_grad_row_c(da, g, u, n, dg, du); }

#endif /* architecture */
#endif /* ASSAY_SHIM_TRAIN_H */
