/* Compiled for aarch64 by `make check-aarch64`: takes the address of every function the Swift
   code calls in Sources/CBLAS/shim.h, so each portable definition is generated, not only parsed. */
#include "../../../Sources/CBLAS/shim.h"

void *const assay_shim_entry_points[] = {
    (void *)assay_cpu_has_avx2_fma_f16c, (void *)assay_cpu_has_avx512, (void *)assay_cpu_has_avx512_bf16,
    (void *)assay_native_level, (void *)assay_dot_rows, (void *)assay_dot_8rows, (void *)assay_f32_to_bf16_rows,
    (void *)assay_bf16_gemm_cols, (void *)assay_swiglu_bf16_rows, (void *)assay_attention_scratch_bytes,
    (void *)assay_bf16_attention, (void *)assay_rows_q4_1_f32, (void *)assay_rows_q8_0_f32,
    (void *)assay_rows_q4_1_q8_1, (void *)assay_rows_q8_0_q8_0, (void *)assay_dequant_rows,
};
