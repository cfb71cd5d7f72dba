// blas_info.h — which BLAS the CPU convolutions and matrix products run on, told to the user.
// Results of the same seed are bit-identical only on the same BLAS kernels (README
// "Reproducibility"): OpenBLAS's DYNAMIC_ARCH build picks its kernels for the CPU model, or as the
// environment's OPENBLAS_CORETYPE says, and each kernel family sums a GEMM in its own order.
// Rules: OpenBLAS is asked through its own functions only when cblas.h is OpenBLAS's (it defines
// OPENBLAS_VERSION); with any other cblas the answer says the BLAS is unknown. Nothing here
// changes a setting.
#pragma once
#include <string>

namespace dfq {

// One line, e.g. "OpenBLAS 0.3.21 (Haswell kernels, OPENBLAS_CORETYPE=Haswell, OpenMP, 2 threads)";
// without OPENBLAS_CORETYPE the kernels are the ones OpenBLAS picked for this CPU ("..., for this
// CPU, ..."). Another BLAS: "BLAS: not OpenBLAS (kernel family unknown)".
std::string blas_description();

// The OpenBLAS kernel family in use ("Haswell", "SkylakeX", ...); empty when the BLAS is not OpenBLAS.
std::string blas_core();

}  // namespace dfq
