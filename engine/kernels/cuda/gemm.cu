// gemm.cu — CUDA twin of gemm (engine/kernels/cpu/gemm_conv.cpp) through cuBLAS.
// Rules: row-major C (M,N) is column-major C^T, so C^T = op(B)^T op(A)^T is one cublasSgemm with the
// operands swapped (m = N, n = M). The handle is bound to the engine stream; its math mode follows
// dfq::cuda::tf32() (off: CUBLAS_DEFAULT_MATH, no TF32). K == 0 or alpha == 0 scales C by beta
// (beta == 0 writes zeros, clearing NaNs, as BLAS and the CPU twin do) without calling cuBLAS.
#include "engine/kernels/cuda/common.cuh"

namespace dfq::cuda {
namespace {

__global__ void scale_rows_kernel(int64_t total, int N, float beta, float* C, int ldc) {
  DFQ_GRID_LOOP(t, total) {
    const int64_t i = t / N, j = t - i * N;
    float* c = C + i * ldc + j;
    *c = beta == 0.f ? 0.f : beta * *c;
  }
}

}  // namespace

void gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A, int lda, const float* B,
          int ldb, float beta, float* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.f) {
    const int64_t total = int64_t(M) * N;
    DFQ_LAUNCH(scale_rows_kernel, grid_for(total), detail::kThreads, total, N, beta, C, ldc);
    return;
  }
  DFQ_CUBLAS_CHECK(cublasSgemm(cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N,
                               M, K, &alpha, B, ldb, A, lda, &beta, C, ldc));
}

}  // namespace dfq::cuda
