#include <cblas.h>
#include <stdint.h>
#include <math.h>

/* assay_native_level()'s NEON bit (aarch64); x86 levels use bits 0–2. */
#define ASSAY_LEVEL_NEON 8

/* Everything below up to the matching #else is x86: intrinsics, `target` attributes, cpuid and
   xgetbv. Other architectures get the portable definitions after the #else (same names, same
   contracts), so the package builds on aarch64 Linux and Apple silicon; `make check-aarch64`
   compiles this header for aarch64 to keep it that way. */
#if defined(__x86_64__) || defined(__i386__)
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

/* out[r] = dot(row r of w, x) for 8 consecutive weight rows (ldw elements apart) and one
   activation row: each 8-float load of x serves all 8 rows. For decode when x is too wide for L1
   (Qwen2.5-VL-3B's down projection: 11,008 floats = 43 KB): one row at a time then re-reads x
   from L2 for every row and streams weights at two thirds of the memory bandwidth; 8 rows at a
   time stream at the full bandwidth. kind as for assay_dot_rows. */
__attribute__((target("avx2,fma,f16c")))
static inline __m256 assay_load_kind(const void *w, int kind, long j) {
    if (kind == 1) return assay_load_bf16((const uint16_t *)w + j);
    if (kind == 2) return assay_load_f16((const uint16_t *)w + j);
    return _mm256_loadu_ps((const float *)w + j);
}

__attribute__((target("avx2,fma,f16c")))
static inline void assay_dot_8rows(const void *w, int kind, long ldw, const float *x, long n, float *out) {
    long es = kind == 0 ? 4 : 2; /* bytes per weight element */
    const char *base = (const char *)w;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 xv = _mm256_loadu_ps(x + j);
        a0 = _mm256_fmadd_ps(assay_load_kind(base, kind, j), xv, a0);
        a1 = _mm256_fmadd_ps(assay_load_kind(base + 1 * ldw * es, kind, j), xv, a1);
        a2 = _mm256_fmadd_ps(assay_load_kind(base + 2 * ldw * es, kind, j), xv, a2);
        a3 = _mm256_fmadd_ps(assay_load_kind(base + 3 * ldw * es, kind, j), xv, a3);
        a4 = _mm256_fmadd_ps(assay_load_kind(base + 4 * ldw * es, kind, j), xv, a4);
        a5 = _mm256_fmadd_ps(assay_load_kind(base + 5 * ldw * es, kind, j), xv, a5);
        a6 = _mm256_fmadd_ps(assay_load_kind(base + 6 * ldw * es, kind, j), xv, a6);
        a7 = _mm256_fmadd_ps(assay_load_kind(base + 7 * ldw * es, kind, j), xv, a7);
    }
    __m256 acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
    for (int r = 0; r < 8; r++) {
        float s = assay_hsum256(acc[r]);
        const char *row = base + r * ldw * es;
        for (long k = j; k < n; k++) {
            float wk;
            if (kind == 1) { uint32_t bits = (uint32_t)((const uint16_t *)(const void *)row)[k] << 16; __builtin_memcpy(&wk, &bits, 4); }
            else if (kind == 2) { wk = _cvtsh_ss(((const uint16_t *)(const void *)row)[k]); }
            else wk = ((const float *)(const void *)row)[k];
            s += wk * x[k];
        }
        out[r] = s;
    }
}

/* ---- bf16 × bf16 → f32 matrix product with AVX512-BF16 (vdpbf16ps) -------------------------
   For prefill, vision and attention when the caller opted into bf16 matmuls: OpenBLAS as shipped
   by Debian has no sbgemm. C[m, n] (=, or += with `accumulate`) Σ_k A[m, k]·B[n, k] (+ bias[n])
   for columns n0 ≤ n < n1.
   A: activations already rounded to bf16 (assay_f32_to_bf16_rows), K padded with zeros to an even
   count, lda elements per row, and readable (any values) up to the next multiple of 8 rows.
   B: [N, K] row-major with ldb elements per row (weights as stored, or keys of an attention head).
   Bp: scratch of 256·32 uint32 (one packed 32-column × 512-k panel, 32 KiB: it stays in L1 while
   every row block of A streams past it). */

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

/* The scalar rounding every bf16 path shares: round to nearest even, NaN → 0x7FC0 (Swift's
   floatToBF16; unlike vcvtneps2bf16 it keeps subnormals). */
static inline uint16_t assay_bf16_round(float f) {
    uint32_t bits;
    __builtin_memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline __m256i assay_bf16_round16(__m512 v) {
    __m512i b = _mm512_castps_si512(v);
    __m512i r = _mm512_add_epi32(b, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), _mm512_and_si512(_mm512_srli_epi32(b, 16), _mm512_set1_epi32(1))));
    r = _mm512_srli_epi32(r, 16);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(b, _mm512_set1_epi32(0x7FFFFFFF)), _mm512_set1_epi32(0x7F800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_set1_epi32(0x7FC0));
    return _mm512_cvtepi32_epi16(r);
}

__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void assay_f32_to_bf16_row_512(const float *x, long k, uint16_t *a, long lda) {
    long j = 0;
    for (; j + 16 <= k; j += 16) _mm256_storeu_si256((__m256i *)(a + j), assay_bf16_round16(_mm512_loadu_ps(x + j)));
    if (j < k) {
        __mmask16 m = (__mmask16)((1u << (k - j)) - 1);
        _mm256_mask_storeu_epi16(a + j, m, assay_bf16_round16(_mm512_maskz_loadu_ps(m, x + j)));
    }
    for (j = k; j < lda; j++) a[j] = 0;
}

/* Rows [r0, r1) of x (ldx floats apart) rounded to bf16 into a (lda apart), columns k..<lda zeroed.
   `wide`: AVX512F/BW/VL are there (assay_cpu_has_avx512, asked once by the caller: cpuid traps to
   the hypervisor in a VM). */
static inline void assay_f32_to_bf16_rows(int wide, const float *x, long ldx, long r0, long r1, long k, uint16_t *a, long lda) {
    for (long r = r0; r < r1; r++) {
        if (wide) {
            assay_f32_to_bf16_row_512(x + r * ldx, k, a + r * lda, lda);
        } else {
            for (long j = 0; j < k; j++) a[r * lda + j] = assay_bf16_round(x[r * ldx + j]);
            for (long j = k; j < lda; j++) a[r * lda + j] = 0;
        }
    }
}

/* 16 rows × 16 uint32 (lds apart) transposed into 16 rows × 16 (ldd apart). */
__attribute__((target("avx512f")))
static inline void assay_transpose16x16_u32(const uint32_t *src, long lds, uint32_t *dst, long ldd) {
    __m512i r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512((const void *)(src + i * lds));
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 2; i++) {
        for (int c = 0; c < 4; c++) {
            t[8 * i + c] = _mm512_shuffle_i32x4(r[8 * i + c], r[8 * i + 4 + c], 0x88);
            t[8 * i + 4 + c] = _mm512_shuffle_i32x4(r[8 * i + c], r[8 * i + 4 + c], 0xDD);
        }
    }
    for (int c = 0; c < 8; c++) {
        r[c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0x88);
        r[8 + c] = _mm512_shuffle_i32x4(t[c], t[8 + c], 0xDD);
    }
    for (int i = 0; i < 16; i++) _mm512_storeu_si512((void *)(dst + i * ldd), r[i]);
}

/* The panel of columns nt..<nt+nw (nw ≤ 32), k0..<k0+kw: Bp[p·32 + j] holds B[nt+j][k0+2p, k0+2p+1]
   (a zero second half past K, zero columns past nw). Whole 16 × 16 blocks go through the
   transpose; the ragged edges are copied one pair at a time. */
__attribute__((target("avx512f")))
static inline void assay_bf16_pack_panel(const uint16_t *B, long ldb, long nt, long nw, long k0, long kw, uint32_t *Bp) {
    long kp = (kw + 1) / 2, full = kw / 2;  /* pairs; pairs with both halves inside K */
    long pBlocks = ((k0 | ldb) & 1) ? 0 : full / 16; /* whole uint32 pairs need even k0 and ldb */
    for (long g = 0; g < 2; g++) {
        long j0 = 16 * g;
        if (j0 + 16 <= nw) {
            for (long pb = 0; pb < pBlocks; pb++)
                assay_transpose16x16_u32((const uint32_t *)(const void *)(B + (nt + j0) * ldb + k0) + 16 * pb, ldb / 2,
                                         Bp + 16 * pb * 32 + j0, 32);
        }
    }
    for (long j = 0; j < 32; j++) {
        long pStart = (j < nw && (j < 16 ? 16 <= nw : 32 <= nw)) ? 16 * pBlocks : 0;
        if (j >= nw) {
            for (long p = 0; p < kp; p++) Bp[p * 32 + j] = 0;
            continue;
        }
        const uint16_t *src = B + (nt + j) * ldb + k0;
        for (long p = pStart; p < full; p++) Bp[p * 32 + j] = (uint32_t)src[2 * p] | ((uint32_t)src[2 * p + 1] << 16);
        if (kw & 1) Bp[(kp - 1) * 32 + j] = src[kw - 1];
    }
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline void assay_bf16_gemm_cols(const uint16_t *A, long lda, long M, const uint16_t *B, long ldb, long K,
                                        long n0, long n1, float *C, long ldc, uint32_t *Bp,
                                        const float *bias, int accumulate) {
    const long KC = 512;
    long Mpad = (M + 7) & ~7L;
    for (long nt = n0; nt < n1; nt += 32) {
        long nw = n1 - nt < 32 ? n1 - nt : 32;
        __mmask16 mask0 = nw >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nw) - 1);
        __mmask16 mask1 = nw > 16 ? (nw >= 32 ? (__mmask16)0xFFFF : (__mmask16)((1u << (nw - 16)) - 1)) : 0;
        __m512 bias0 = bias ? _mm512_maskz_loadu_ps(mask0, bias + nt) : _mm512_setzero_ps();
        __m512 bias1 = bias && mask1 ? _mm512_maskz_loadu_ps(mask1, bias + nt + 16) : _mm512_setzero_ps();
        for (long k0 = 0; k0 < K; k0 += KC) {
            long kw = K - k0 < KC ? K - k0 : KC;
            long kp = (kw + 1) / 2;
            int addOld = k0 > 0 || accumulate, last = k0 + KC >= K;
            assay_bf16_pack_panel(B, ldb, nt, nw, k0, kw, Bp);
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
                    if (addOld) {
                        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(mask0, dst));
                        if (mask1) v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(mask1, dst + 16));
                    }
                    if (last && bias) {
                        v0 = _mm512_add_ps(v0, bias0);
                        v1 = _mm512_add_ps(v1, bias1);
                    }
                    _mm512_mask_storeu_ps(dst, mask0, v0);
                    if (mask1) _mm512_mask_storeu_ps(dst + 16, mask1, v1);
                }
            }
        }
    }
}

/* ---- Element-wise pieces of the bf16 path (AVX512F) -----------------------------------------
   Only the bf16 matmul path uses these: its products already round activations to bf16, so an
   exp within 2 ulp of expf changes nothing that matters, and the exact f32 path keeps expf. */

/* e^x for 16 lanes: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 split in two so n·ln2_hi is exact), a
   degree-6 Taylor polynomial for e^r (relative error < 2e-7 on that range) and vscalefps for 2^n,
   which also gives 0 below -104 and +inf above 89 as expf does. */
__attribute__((target("avx512f")))
static inline __m512 assay_exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-104.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* Row r of g·silu… for rows [r0, r1): a[r] = bf16(silu(g[r]) · u[r]) over n columns (g, u: ldg
   floats apart; a: lda apart, columns n..<lda zeroed) — the SwiGLU product handed straight to
   the down projection. */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline void assay_swiglu_bf16_rows(const float *g, const float *u, long ldg, long r0, long r1, long n, uint16_t *a, long lda) {
    for (long r = r0; r < r1; r++) {
        const float *gr = g + r * ldg, *ur = u + r * ldg;
        uint16_t *ar = a + r * lda;
        for (long j = 0; j < n; j += 16) {
            __mmask16 m = n - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - j)) - 1);
            __m512 gv = _mm512_maskz_loadu_ps(m, gr + j), uv = _mm512_maskz_loadu_ps(m, ur + j);
            __m512 den = _mm512_add_ps(_mm512_set1_ps(1.0f), assay_exp512(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
            _mm256_mask_storeu_epi16(ar + j, m, assay_bf16_round16(_mm512_div_ps(_mm512_mul_ps(gv, uv), den)));
        }
        for (long j = n; j < lda; j++) ar[j] = 0;
    }
}

/* ---- Attention with bf16 products -----------------------------------------------------------
   For each of `heads` query heads that share one key/value head (GQA):
   out[i] = Σ_j p_ij·v_j with p_i = softmax_j(scale · q_i·k_j) over the keys query i may see:
   j < nk, j ≤ causal + i when causal ≥ 0, and valid[j] when valid is given. A query that sees no
   key gets zeros. q, k, v, out: f32 rows (ldq, ldk, ldv, ldo floats apart); head h's queries and
   outputs start h·qh and h·oh floats after the first's. Scores and softmax are f32; q, k, v and
   the probabilities are rounded to bf16 for the two products, as PyTorch's bf16 attention does.
   Keys and values are converted once for all heads; queries go in blocks of 64 so a block's
   scores stay in L2 and, when causal, a block only multiplies the keys it may see.
   `scratch`: assay_attention_scratch_bytes(nk, hd) bytes, 64-byte aligned. */
#define ASSAY_ATTN_QB 64L
static inline long assay_attention_scratch_bytes(long nk, long hd) {
    long hp = (hd + 1) & ~1L, kp = (nk + 1) & ~1L, hr = (hd + 7) & ~7L;
    long bytes = 256 * 32 * 4;                                              /* packed panel */
    bytes += ASSAY_ATTN_QB * hp * 2 + ((nk + 7) & ~7L) * hp * 2 + hr * kp * 2; /* q, k, vᵀ in bf16 */
    bytes += ASSAY_ATTN_QB * nk * 4 + ASSAY_ATTN_QB * kp * 2;               /* scores, probabilities */
    return bytes + 6 * 64;
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
static inline void assay_bf16_attention(const float *q, long ldq, long qh, const float *k, long ldk, const float *v, long ldv,
                                        float *out, long ldo, long oh, long heads, long nq, long nk, long hd, float scale,
                                        long causal, const uint8_t *valid, void *scratch) {
    if (nq <= 0 || nk <= 0 || hd <= 0) return;
    long hp = (hd + 1) & ~1L, kp = (nk + 1) & ~1L;
    char *s = (char *)scratch;
#define ASSAY_TAKE(T, name, count) T *name = (T *)(void *)s; s += (((count) * (long)sizeof(T)) + 63) & ~63L;
    ASSAY_TAKE(uint32_t, panel, 256 * 32)
    ASSAY_TAKE(uint16_t, qb, ASSAY_ATTN_QB * hp)
    ASSAY_TAKE(uint16_t, kb, ((nk + 7) & ~7L) * hp)
    ASSAY_TAKE(uint16_t, vt, ((hd + 7) & ~7L) * kp)
    ASSAY_TAKE(float, scores, ASSAY_ATTN_QB * nk)
    ASSAY_TAKE(uint16_t, probs, ASSAY_ATTN_QB * kp)
#undef ASSAY_TAKE
    assay_f32_to_bf16_rows(1, k, ldk, 0, nk, hd, kb, hp);
    /* vᵀ: row c holds column c of v over the keys, a zero past nk. */
    for (long c = 0; c < hd; c++) {
        for (long j = 0; j < nk; j++) vt[c * kp + j] = assay_bf16_round(v[j * ldv + c]);
        if (kp > nk) vt[c * kp + nk] = 0;
    }
    __m512 sc = _mm512_set1_ps(scale);
    for (long h = 0; h < heads; h++) {
        for (long i0 = 0; i0 < nq; i0 += ASSAY_ATTN_QB) {
            long bq = nq - i0 < ASSAY_ATTN_QB ? nq - i0 : ASSAY_ATTN_QB;
            /* keys any query of the block may see */
            long seen = causal >= 0 ? (causal + i0 + bq < nk ? causal + i0 + bq : nk) : nk;
            float *o = out + h * oh + i0 * ldo;
            if (seen <= 0) {
                for (long i = 0; i < bq; i++) for (long c = 0; c < hd; c++) o[i * ldo + c] = 0;
                continue;
            }
            long seenPad = (seen + 1) & ~1L;
            assay_f32_to_bf16_rows(1, q + h * qh + i0 * ldq, ldq, 0, bq, hd, qb, hp);
            for (long i = bq * hp; i < ((bq + 7) & ~7L) * hp; i++) qb[i] = 0;
            assay_bf16_gemm_cols(qb, hp, bq, kb, hp, hp, 0, seen, scores, seen, panel, 0, 0);
            for (long i = 0; i < bq; i++) {
                float *row = scores + i * seen;
                uint16_t *pr = probs + i * seenPad;
                long limit = causal >= 0 ? (causal + i0 + i + 1 < seen ? causal + i0 + i + 1 : seen) : seen;
                if (limit < 0) limit = 0;
                __m512 mx = _mm512_set1_ps(-INFINITY);
                for (long j = 0; j < limit; j += 16) {
                    __mmask16 m = limit - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (limit - j)) - 1);
                    if (valid) m &= _mm512_cmpneq_epi32_mask(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, valid + j)), _mm512_setzero_si512());
                    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_maskz_loadu_ps(m, row + j));
                }
                float top = _mm512_reduce_max_ps(mx);
                long j = 0;
                if (top != -INFINITY) {
                    /* e^(scale·(s − max)): the scale is applied here, in f32, rather than to q. */
                    __m512 sum = _mm512_setzero_ps(), topv = _mm512_set1_ps(top);
                    for (j = 0; j < limit; j += 16) {
                        __mmask16 all = limit - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (limit - j)) - 1), m = all;
                        if (valid) m &= _mm512_cmpneq_epi32_mask(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(all, valid + j)), _mm512_setzero_si512());
                        __m512 e = _mm512_maskz_mov_ps(m, assay_exp512(_mm512_mul_ps(sc, _mm512_sub_ps(_mm512_maskz_loadu_ps(all, row + j), topv))));
                        sum = _mm512_add_ps(sum, e);
                        _mm512_mask_storeu_ps(row + j, all, e);
                    }
                    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
                    for (j = 0; j < limit; j += 16) {
                        __mmask16 m = limit - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (limit - j)) - 1);
                        _mm256_mask_storeu_epi16(pr + j, m, assay_bf16_round16(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + j), inv)));
                    }
                    j = limit;
                }
                for (; j < seenPad; j++) pr[j] = 0;
            }
            for (long i = bq * seenPad; i < ((bq + 7) & ~7L) * seenPad; i++) probs[i] = 0;
            assay_bf16_gemm_cols(probs, seenPad, bq, vt, kp, seenPad, 0, hd, o, ldo, panel, 0, 0);
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

/* The two f16 values at p as lanes 0 and 1 (lanes 2–3 zero): a Q4_1 block's d and m in one
   conversion instead of two scalar ones. For Q8_0 only lane 0 (d) is used; lane 1 is two quants
   read as a half and never looked at. */
__attribute__((target("avx2,fma,f16c")))
static inline __m128 assay_halves2(const uint8_t *p) {
    int bits;
    __builtin_memcpy(&bits, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(bits));
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

/* Two zero-extensions of 8 bytes each give all 32 nibbles: the low nibbles of bytes 0–7 and 8–15
   are weights 0–7 and 8–15, the high nibbles (a shift, since the upper bytes are zero) 16–31. Half
   the shuffles of widening the masked halves separately, which is what the decode pass waits on. */
__attribute__((target("avx2,fma,f16c")))
static inline void assay_q4_1_values_256(const uint8_t *qs, __m256 *v) {
    const __m256i mask = _mm256_set1_epi32(0x0F);
    __m256i q0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)qs));
    __m256i q1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(qs + 8)));
    v[0] = _mm256_cvtepi32_ps(_mm256_and_si256(q0, mask));
    v[1] = _mm256_cvtepi32_ps(_mm256_and_si256(q1, mask));
    v[2] = _mm256_cvtepi32_ps(_mm256_srli_epi32(q0, 4));
    v[3] = _mm256_cvtepi32_ps(_mm256_srli_epi32(q1, 4));
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
#define ASSAY_FLOAT_KERNELS(W, TARGET, VEC, LANES, ZERO, SET1, BCAST, LOADU, STOREU, MUL, ADD, FMADD, HSUM)                \
    /* Σ q_j·x_j of one block, as a vector of partial sums. */                                                    \
    __attribute__((target(TARGET)))                                                                               \
    static inline VEC assay_dot_##W(const VEC *v, const float *xb) {                                             \
        /* Two chains (vectors 0, 2 and 1, 3) when there are four: half the dependent FMAs. */                   \
        VEC t = MUL(v[0], LOADU(xb));                                                                             \
        if (32 / LANES == 2) return FMADD(v[1], LOADU(xb + LANES), t);                                            \
        VEC u = MUL(v[1], LOADU(xb + LANES));                                                                     \
        t = FMADD(v[2], LOADU(xb + 2 * LANES), t);                                                                \
        u = FMADD(v[3], LOADU(xb + 3 * LANES), u);                                                                \
        return ADD(t, u);                                                                                         \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static inline VEC assay_q4_1_block_##W(const uint8_t *blk, const float *xb, VEC acc) {                       \
        VEC v[32 / LANES];                                                                                        \
        assay_q4_1_values_##W(blk + 4, v);                                                                        \
        return FMADD(SET1(assay_half(blk)), assay_dot_##W(v, xb), acc);                                          \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static inline VEC assay_q8_0_block_##W(const uint8_t *blk, const float *xb, VEC acc) {                       \
        VEC v[32 / LANES];                                                                                        \
        assay_q8_0_values_##W(blk + 2, v);                                                                        \
        return FMADD(SET1(assay_half(blk)), assay_dot_##W(v, xb), acc);                                          \
    }                                                                                                             \
    /* G activations (1 ≤ G ≤ 4; a constant where it is inlined) against `rows` rows: each block's                \
       quants are widened once for all G. Per activation the arithmetic is that of G = 1 (even and                \
       odd blocks in separate accumulators), so a batch gets the same bits as one vector alone.                   \
       A Q4_1 block's d and m are widened together (lane 0 and 1 of one conversion); the minimum                  \
       terms m·Σx accumulate in lane 1 of a 128-bit vector (lane 0 collects d·Σx, unused): no                     \
       scalar conversions in the loop. Outputs: out[i · ldo + r]. */                                              \
    __attribute__((target(TARGET), always_inline))                                                                \
    static inline void assay_q4_1_group_##W(const uint8_t *w, long rowBytes, long rows, const float *const *x,    \
                                            const float *const *xs, int G, long blocks, float *out, long ldo) {   \
        for (long r = 0; r < rows; r++) {                                                                         \
            const uint8_t *p = w + r * rowBytes;                                                                  \
            VEC acc0[4], acc1[4], v[32 / LANES];                                                                  \
            __m128 mn0[4], mn1[4];                                                                                \
            for (int i = 0; i < G; i++) { acc0[i] = ZERO(); acc1[i] = ZERO(); mn0[i] = _mm_setzero_ps(); mn1[i] = mn0[i]; }\
            long b = 0;                                                                                           \
            for (; b + 1 < blocks; b += 2) {                                                                      \
                const uint8_t *q = p + 20 * b;                                                                    \
                __m128 dm = assay_halves2(q);                                                                     \
                assay_q4_1_values_##W(q + 4, v);                                                                  \
                VEC d = BCAST(dm);                                                                                \
                for (int i = 0; i < G; i++) {                                                                     \
                    acc0[i] = FMADD(d, assay_dot_##W(v, x[i] + 32 * b), acc0[i]);                                 \
                    mn0[i] = _mm_fmadd_ps(dm, _mm_broadcast_ss(xs[i] + b), mn0[i]);                               \
                }                                                                                                 \
                dm = assay_halves2(q + 20);                                                                       \
                assay_q4_1_values_##W(q + 24, v);                                                                 \
                d = BCAST(dm);                                                                                    \
                for (int i = 0; i < G; i++) {                                                                     \
                    acc1[i] = FMADD(d, assay_dot_##W(v, x[i] + 32 * b + 32), acc1[i]);                            \
                    mn1[i] = _mm_fmadd_ps(dm, _mm_broadcast_ss(xs[i] + b + 1), mn1[i]);                           \
                }                                                                                                 \
            }                                                                                                     \
            if (b < blocks) {                                                                                     \
                const uint8_t *q = p + 20 * b;                                                                    \
                __m128 dm = assay_halves2(q);                                                                     \
                assay_q4_1_values_##W(q + 4, v);                                                                  \
                VEC d = BCAST(dm);                                                                                \
                for (int i = 0; i < G; i++) {                                                                     \
                    acc0[i] = FMADD(d, assay_dot_##W(v, x[i] + 32 * b), acc0[i]);                                 \
                    mn0[i] = _mm_fmadd_ps(dm, _mm_broadcast_ss(xs[i] + b), mn0[i]);                               \
                }                                                                                                 \
            }                                                                                                     \
            for (int i = 0; i < G; i++) {                                                                         \
                __m128 mn = _mm_add_ps(mn0[i], mn1[i]);                                                           \
                out[i * ldo + r] = HSUM(ADD(acc0[i], acc1[i])) + _mm_cvtss_f32(_mm_shuffle_ps(mn, mn, 1));        \
            }                                                                                                     \
        }                                                                                                         \
    }                                                                                                             \
    __attribute__((target(TARGET), always_inline))                                                                \
    static inline void assay_q8_0_group_##W(const uint8_t *w, long rowBytes, long rows, const float *const *x,    \
                                            int G, long blocks, float *out, long ldo) {                           \
        for (long r = 0; r < rows; r++) {                                                                         \
            const uint8_t *p = w + r * rowBytes;                                                                  \
            VEC acc0[4], acc1[4], v[32 / LANES];                                                                  \
            for (int i = 0; i < G; i++) { acc0[i] = ZERO(); acc1[i] = ZERO(); }                                   \
            long b = 0;                                                                                           \
            for (; b + 1 < blocks; b += 2) {                                                                      \
                const uint8_t *q = p + 34 * b;                                                                    \
                VEC d = BCAST(assay_halves2(q));                                                                  \
                assay_q8_0_values_##W(q + 2, v);                                                                  \
                for (int i = 0; i < G; i++) acc0[i] = FMADD(d, assay_dot_##W(v, x[i] + 32 * b), acc0[i]);         \
                d = BCAST(assay_halves2(q + 34));                                                                 \
                assay_q8_0_values_##W(q + 36, v);                                                                 \
                for (int i = 0; i < G; i++) acc1[i] = FMADD(d, assay_dot_##W(v, x[i] + 32 * b + 32), acc1[i]);    \
            }                                                                                                     \
            if (b < blocks) {                                                                                     \
                const uint8_t *q = p + 34 * b;                                                                    \
                VEC d = BCAST(assay_halves2(q));                                                                  \
                assay_q8_0_values_##W(q + 2, v);                                                                  \
                for (int i = 0; i < G; i++) acc0[i] = FMADD(d, assay_dot_##W(v, x[i] + 32 * b), acc0[i]);         \
            }                                                                                                     \
            for (int i = 0; i < G; i++) out[i * ldo + r] = HSUM(ADD(acc0[i], acc1[i]));                           \
        }                                                                                                         \
    }                                                                                                             \
    /* m activations in groups of four, 16 rows at a time (their bytes stay in L1 across groups). */              \
    __attribute__((target(TARGET)))                                                                               \
    static void assay_q4_1_f32_##W(const uint8_t *w, long rowBytes, long rows, const float *const *x,             \
                                   const float *const *xs, int m, long blocks, float *out, long ldo) {            \
        if (m == 1) { assay_q4_1_group_##W(w, rowBytes, rows, x, xs, 1, blocks, out, ldo); return; }              \
        for (long r0 = 0; r0 < rows; r0 += 16) {                                                                  \
            long n = rows - r0 < 16 ? rows - r0 : 16;                                                             \
            const uint8_t *wr = w + r0 * rowBytes;                                                                \
            for (int i = 0; i < m; i += 4) {                                                                      \
                float *o = out + i * ldo + r0;                                                                    \
                switch (m - i) {                                                                                  \
                case 1: assay_q4_1_group_##W(wr, rowBytes, n, x + i, xs + i, 1, blocks, o, ldo); break;           \
                case 2: assay_q4_1_group_##W(wr, rowBytes, n, x + i, xs + i, 2, blocks, o, ldo); break;           \
                case 3: assay_q4_1_group_##W(wr, rowBytes, n, x + i, xs + i, 3, blocks, o, ldo); break;           \
                default: assay_q4_1_group_##W(wr, rowBytes, n, x + i, xs + i, 4, blocks, o, ldo); break;          \
                }                                                                                                 \
            }                                                                                                     \
        }                                                                                                         \
    }                                                                                                             \
    __attribute__((target(TARGET)))                                                                               \
    static void assay_q8_0_f32_##W(const uint8_t *w, long rowBytes, long rows, const float *const *x, int m,      \
                                   long blocks, float *out, long ldo) {                                           \
        if (m == 1) { assay_q8_0_group_##W(w, rowBytes, rows, x, 1, blocks, out, ldo); return; }                  \
        for (long r0 = 0; r0 < rows; r0 += 16) {                                                                  \
            long n = rows - r0 < 16 ? rows - r0 : 16;                                                             \
            const uint8_t *wr = w + r0 * rowBytes;                                                                \
            for (int i = 0; i < m; i += 4) {                                                                      \
                float *o = out + i * ldo + r0;                                                                    \
                switch (m - i) {                                                                                  \
                case 1: assay_q8_0_group_##W(wr, rowBytes, n, x + i, 1, blocks, o, ldo); break;                   \
                case 2: assay_q8_0_group_##W(wr, rowBytes, n, x + i, 2, blocks, o, ldo); break;                   \
                case 3: assay_q8_0_group_##W(wr, rowBytes, n, x + i, 3, blocks, o, ldo); break;                   \
                default: assay_q8_0_group_##W(wr, rowBytes, n, x + i, 4, blocks, o, ldo); break;                  \
                }                                                                                                 \
            }                                                                                                     \
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

ASSAY_FLOAT_KERNELS(512, "avx512f,avx512bw,avx512vl,fma,f16c", __m512, 16, _mm512_setzero_ps, _mm512_set1_ps, _mm512_broadcastss_ps, _mm512_loadu_ps,
                    _mm512_storeu_ps, _mm512_mul_ps, _mm512_add_ps, _mm512_fmadd_ps, assay_hsum512)
ASSAY_FLOAT_KERNELS(256, "avx2,fma,f16c", __m256, 8, _mm256_setzero_ps, _mm256_set1_ps, _mm256_broadcastss_ps, _mm256_loadu_ps,
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
static inline void assay_rows_q4_1_f32(int level, const void *w, long rowBytes, long rows, const float *const *x, const float *const *xs, int m, long blocks, float *out, long ldo) {
    if (level & 2) assay_q4_1_f32_512((const uint8_t *)w, rowBytes, rows, x, xs, m, blocks, out, ldo);
    else assay_q4_1_f32_256((const uint8_t *)w, rowBytes, rows, x, xs, m, blocks, out, ldo);
}
static inline void assay_rows_q8_0_f32(int level, const void *w, long rowBytes, long rows, const float *const *x, int m, long blocks, float *out, long ldo) {
    if (level & 2) assay_q8_0_f32_512((const uint8_t *)w, rowBytes, rows, x, m, blocks, out, ldo);
    else assay_q8_0_f32_256((const uint8_t *)w, rowBytes, rows, x, m, blocks, out, ldo);
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

#else /* not x86: the same entry points in portable C */

/* On other architectures (aarch64 Linux, Apple silicon) there is no cpuid and none of the x86
   kernels above: every capability query answers "no", so the Swift side takes its own SIMD
   kernels, and each entry point Swift links against has a plain-C definition with the same
   contract, written for clarity rather than speed (it is reached only if a caller skips the
   capability check). */

static inline int assay_cpu_has_avx2_fma_f16c(void) { return 0; }
static inline int assay_cpu_has_avx512(int *vnni) { *vnni = 0; return 0; }
static inline int assay_cpu_has_avx512_bf16(void) { return 0; }
#if defined(__aarch64__) && defined(__ARM_NEON)
#define ASSAY_HAS_NEON 1
#endif

/* ASSAY_LEVEL_NEON on aarch64, where Advanced SIMD is always there; 0 elsewhere. */
static inline int assay_native_level(void) {
#ifdef ASSAY_HAS_NEON
    return ASSAY_LEVEL_NEON;
#else
    return 0;
#endif
}

/* IEEE half → float without F16C (subnormals, infinities and NaN included). */
static inline float assay_half_bits_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {
            /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FFu) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7F800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

static inline float assay_half(const uint8_t *p) {
    uint16_t h;
    __builtin_memcpy(&h, p, 2);
    return assay_half_bits_to_float(h);
}

static inline float assay_bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    __builtin_memcpy(&f, &bits, 4);
    return f;
}

static inline uint16_t assay_bf16_round(float f) {
    uint32_t bits;
    __builtin_memcpy(&bits, &f, 4);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
    return (uint16_t)((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

static inline float assay_weight(const void *w, int kind, long j) {
    if (kind == 1) return assay_bf16_to_float(((const uint16_t *)w)[j]);
    if (kind == 2) return assay_half_bits_to_float(((const uint16_t *)w)[j]);
    return ((const float *)w)[j];
}

static inline void assay_portable_dot_rows(const void *w, int kind, const float *x, long ldx, int m, long n, float *out) {
    for (int i = 0; i < m; i++) {
        float s = 0;
        for (long j = 0; j < n; j++) s += assay_weight(w, kind, j) * x[i * ldx + j];
        out[i] = s;
    }
}

static inline void assay_portable_dot_8rows(const void *w, int kind, long ldw, const float *x, long n, float *out) {
    long es = kind == 0 ? 4 : 2;
    for (int r = 0; r < 8; r++) assay_portable_dot_rows((const char *)w + r * ldw * es, kind, x, 0, 1, n, out + r);
}

static inline void assay_f32_to_bf16_rows(int wide, const float *x, long ldx, long r0, long r1, long k, uint16_t *a, long lda) {
    (void)wide;
    for (long r = r0; r < r1; r++) {
        for (long j = 0; j < k; j++) a[r * lda + j] = assay_bf16_round(x[r * ldx + j]);
        for (long j = k; j < lda; j++) a[r * lda + j] = 0;
    }
}

/* C[m, n] (=, or += with `accumulate`) Σ_k A[m, k]·B[n, k] (+ bias[n]) for n0 ≤ n < n1; A and B
   bf16 as in the AVX512-BF16 kernel; Bp (its packing scratch) is unused here. */
static inline void assay_bf16_gemm_cols(const uint16_t *A, long lda, long M, const uint16_t *B, long ldb, long K,
                                        long n0, long n1, float *C, long ldc, uint32_t *Bp,
                                        const float *bias, int accumulate) {
    (void)Bp;
    for (long m = 0; m < M; m++) {
        for (long n = n0; n < n1; n++) {
            float s = 0;
            for (long k = 0; k < K; k++) s += assay_bf16_to_float(A[m * lda + k]) * assay_bf16_to_float(B[n * ldb + k]);
            if (accumulate) s += C[m * ldc + n];
            if (bias) s += bias[n];
            C[m * ldc + n] = s;
        }
    }
}

static inline void assay_swiglu_bf16_rows(const float *g, const float *u, long ldg, long r0, long r1, long n, uint16_t *a, long lda) {
    for (long r = r0; r < r1; r++) {
        for (long j = 0; j < n; j++) {
            float gv = g[r * ldg + j];
            a[r * lda + j] = assay_bf16_round(gv * u[r * ldg + j] / (1.0f + expf(-gv)));
        }
        for (long j = n; j < lda; j++) a[r * lda + j] = 0;
    }
}

static inline long assay_attention_scratch_bytes(long nk, long hd) {
    (void)hd;
    return nk * 4 + 64;
}

/* The contract of the AVX512-BF16 attention above: per query head, softmax(scale · q·k) over
   the visible keys (causal, valid), times v; q, k, v and the probabilities rounded to bf16 for
   the two products; a query that sees no key gets zeros. `scratch` holds one row of scores. */
static inline void assay_bf16_attention(const float *q, long ldq, long qh, const float *k, long ldk, const float *v, long ldv,
                                        float *out, long ldo, long oh, long heads, long nq, long nk, long hd, float scale,
                                        long causal, const uint8_t *valid, void *scratch) {
    if (nq <= 0 || nk <= 0 || hd <= 0) return;
    float *p = (float *)scratch;
    for (long h = 0; h < heads; h++) {
        for (long i = 0; i < nq; i++) {
            const float *qi = q + h * qh + i * ldq;
            float *o = out + h * oh + i * ldo;
            long limit = causal >= 0 ? (causal + i + 1 < nk ? causal + i + 1 : nk) : nk;
            float top = -INFINITY;
            for (long j = 0; j < limit; j++) {
                p[j] = -INFINITY;
                if (valid && !valid[j]) continue;
                float s = 0;
                for (long c = 0; c < hd; c++) s += assay_bf16_to_float(assay_bf16_round(qi[c])) * assay_bf16_to_float(assay_bf16_round(k[j * ldk + c]));
                p[j] = s;
                if (s > top) top = s;
            }
            for (long c = 0; c < hd; c++) o[c] = 0;
            if (top == -INFINITY) continue;
            float sum = 0;
            for (long j = 0; j < limit; j++) {
                p[j] = p[j] == -INFINITY ? 0 : expf(scale * (p[j] - top));
                sum += p[j];
            }
            for (long j = 0; j < limit; j++) {
                float pj = assay_bf16_to_float(assay_bf16_round(p[j] / sum));
                if (pj == 0) continue;
                for (long c = 0; c < hd; c++) o[c] += pj * assay_bf16_to_float(assay_bf16_round(v[j * ldv + c]));
            }
        }
    }
}

/* Q4_1 block: f16 d, f16 m, 16 bytes (low nibbles weights 0–15, high 16–31); Q8_0: f16 d, 32 int8;
   Q8_1 activations: f16 d, f16 s, 32 int8. The f32 row kernels take m activations (out[i·ldo + r]). */
static inline void assay_portable_rows_q4_1_f32(int level, const void *w, long rowBytes, long rows, const float *const *xv, const float *const *xsv, int m, long blocks, float *out, long ldo) {
    (void)level;
    for (int i = 0; i < m; i++) {
        const float *x = xv[i], *xs = xsv[i];
        for (long r = 0; r < rows; r++) {
            const uint8_t *p = (const uint8_t *)w + r * rowBytes;
            float s = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = p + 20 * b, *qs = blk + 4;
                const float *xb = x + 32 * b;
                float t = 0;
                for (int j = 0; j < 16; j++) t += (float)(qs[j] & 0x0F) * xb[j] + (float)(qs[j] >> 4) * xb[16 + j];
                s += assay_half(blk) * t + assay_half(blk + 2) * xs[b];
            }
            out[i * ldo + r] = s;
        }
    }
}

static inline void assay_portable_rows_q8_0_f32(int level, const void *w, long rowBytes, long rows, const float *const *xv, int m, long blocks, float *out, long ldo) {
    (void)level;
    for (int i = 0; i < m; i++) {
        const float *x = xv[i];
        for (long r = 0; r < rows; r++) {
            const uint8_t *p = (const uint8_t *)w + r * rowBytes;
            float s = 0;
            for (long b = 0; b < blocks; b++) {
                const uint8_t *blk = p + 34 * b;
                const int8_t *qs = (const int8_t *)(blk + 2);
                float t = 0;
                for (int j = 0; j < 32; j++) t += (float)qs[j] * x[32 * b + j];
                s += assay_half(blk) * t;
            }
            out[i * ldo + r] = s;
        }
    }
}

static inline void assay_portable_rows_q4_1_q8_1(int level, const void *w, long rowBytes, long rows, const void *a, long blocks, float *out) {
    (void)level;
    for (long r = 0; r < rows; r++) {
        const uint8_t *p = (const uint8_t *)w + r * rowBytes;
        float s = 0;
        for (long b = 0; b < blocks; b++) {
            const uint8_t *blk = p + 20 * b, *act = (const uint8_t *)a + 36 * b;
            const int8_t *aq = (const int8_t *)(act + 4);
            int32_t dot = 0;
            for (int j = 0; j < 16; j++) dot += (int32_t)(blk[4 + j] & 0x0F) * aq[j] + (int32_t)(blk[4 + j] >> 4) * aq[16 + j];
            s += assay_half(blk) * assay_half(act) * (float)dot + assay_half(blk + 2) * assay_half(act + 2);
        }
        out[r] = s;
    }
}

static inline void assay_portable_rows_q8_0_q8_0(int level, const void *w, long rowBytes, long rows, const void *a, long blocks, float *out) {
    (void)level;
    for (long r = 0; r < rows; r++) {
        const uint8_t *p = (const uint8_t *)w + r * rowBytes;
        float s = 0;
        for (long b = 0; b < blocks; b++) {
            const uint8_t *blk = p + 34 * b, *act = (const uint8_t *)a + 34 * b;
            int32_t dot = 0;
            for (int j = 0; j < 32; j++) dot += (int32_t)((const int8_t *)(blk + 2))[j] * ((const int8_t *)(act + 2))[j];
            s += assay_half(blk) * assay_half(act) * (float)dot;
        }
        out[r] = s;
    }
}

static inline void assay_portable_dequant_rows(int level, int q4_1, const void *w, long rowBytes, long rows, long blocks, float *out) {
    (void)level;
    for (long r = 0; r < rows; r++) {
        const uint8_t *src = (const uint8_t *)w + r * rowBytes;
        float *dst = out + r * 32 * blocks;
        for (long b = 0; b < blocks; b++) {
            if (q4_1) {
                const uint8_t *blk = src + 20 * b;
                float d = assay_half(blk), m = assay_half(blk + 2);
                for (int j = 0; j < 16; j++) {
                    dst[32 * b + j] = fmaf(d, (float)(blk[4 + j] & 0x0F), m);
                    dst[32 * b + 16 + j] = fmaf(d, (float)(blk[4 + j] >> 4), m);
                }
            } else {
                const uint8_t *blk = src + 34 * b;
                float d = assay_half(blk);
                for (int j = 0; j < 32; j++) dst[32 * b + j] = d * (float)((const int8_t *)(blk + 2))[j];
            }
        }
    }
}

#ifdef ASSAY_HAS_NEON
#include "shim_neon.h"
#endif

/* The entry points Swift calls: NEON where there is NEON and the caller's level asks for it (the
   dot rows have no level: Swift calls them only on a path with row kernels), else the portable C. */
#ifdef ASSAY_HAS_NEON
#define ASSAY_NEON_OR(level, neon) if ((level) & ASSAY_LEVEL_NEON) { neon; return; }
#else
#define ASSAY_NEON_OR(level, neon)
#endif

static inline void assay_dot_rows(const void *w, int kind, const float *x, long ldx, int m, long n, float *out) {
    ASSAY_NEON_OR(assay_native_level(), assay_neon_dot_rows(w, kind, x, ldx, m, n, out))
    assay_portable_dot_rows(w, kind, x, ldx, m, n, out);
}
static inline void assay_dot_8rows(const void *w, int kind, long ldw, const float *x, long n, float *out) {
    ASSAY_NEON_OR(assay_native_level(), assay_neon_dot_8rows(w, kind, ldw, x, n, out))
    assay_portable_dot_8rows(w, kind, ldw, x, n, out);
}
static inline void assay_rows_q4_1_f32(int level, const void *w, long rowBytes, long rows, const float *const *x, const float *const *xs, int m, long blocks, float *out, long ldo) {
    ASSAY_NEON_OR(level, assay_neon_rows_f32(1, (const uint8_t *)w, rowBytes, rows, x, xs, m, blocks, out, ldo))
    assay_portable_rows_q4_1_f32(level, w, rowBytes, rows, x, xs, m, blocks, out, ldo);
}
static inline void assay_rows_q8_0_f32(int level, const void *w, long rowBytes, long rows, const float *const *x, int m, long blocks, float *out, long ldo) {
    ASSAY_NEON_OR(level, assay_neon_rows_f32(0, (const uint8_t *)w, rowBytes, rows, x, 0, m, blocks, out, ldo))
    assay_portable_rows_q8_0_f32(level, w, rowBytes, rows, x, m, blocks, out, ldo);
}
static inline void assay_rows_q4_1_q8_1(int level, const void *w, long rowBytes, long rows, const void *a, long blocks, float *out) {
    ASSAY_NEON_OR(level, assay_neon_q4_1_q8_1((const uint8_t *)w, rowBytes, rows, (const uint8_t *)a, blocks, out))
    assay_portable_rows_q4_1_q8_1(level, w, rowBytes, rows, a, blocks, out);
}
static inline void assay_rows_q8_0_q8_0(int level, const void *w, long rowBytes, long rows, const void *a, long blocks, float *out) {
    ASSAY_NEON_OR(level, assay_neon_q8_0_q8_0((const uint8_t *)w, rowBytes, rows, (const uint8_t *)a, blocks, out))
    assay_portable_rows_q8_0_q8_0(level, w, rowBytes, rows, a, blocks, out);
}
static inline void assay_dequant_rows(int level, int q4_1, const void *w, long rowBytes, long rows, long blocks, float *out) {
#ifdef ASSAY_HAS_NEON
    if (level & ASSAY_LEVEL_NEON) {
        for (long r = 0; r < rows; r++) assay_neon_dequant(q4_1, (const uint8_t *)w + r * rowBytes, blocks, out + r * 32 * blocks);
        return;
    }
#endif
    assay_portable_dequant_rows(level, q4_1, w, rowBytes, rows, blocks, out);
}

#endif /* architecture */

#include "shim_train.h"
