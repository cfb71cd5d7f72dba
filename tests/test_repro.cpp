// test_repro.cpp — reproducibility a user can rely on (README "Reproducibility"):
// blas_description() says which BLAS kernels ran.
#include <doctest/doctest.h>
#include <omp.h>
#include <cblas.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/blas_info.h"

using namespace dfq;

namespace {

int blas_threads() {
#ifdef OPENBLAS_VERSION
  return openblas_get_num_threads();
#else
  return omp_get_max_threads();
#endif
}

// OpenBLAS's count and OpenMP's default at n for the scope, both put back after. (In OpenBLAS's
// OpenMP build openblas_set_num_threads also sets OpenMP's default; omp_set_num_threads alone does
// not change OpenBLAS's count. Setting both, in this order, pins both.)
class ThreadCount {
 public:
  explicit ThreadCount(int n) : omp_(omp_get_max_threads()), blas_(blas_threads()) { set(n, n); }
  ~ThreadCount() { set(blas_, omp_); }
  ThreadCount(const ThreadCount&) = delete;
  ThreadCount& operator=(const ThreadCount&) = delete;

 private:
  static void set(int blas, int omp) {
#ifdef OPENBLAS_VERSION
    openblas_set_num_threads(blas);
#else
    (void)blas;
#endif
    omp_set_num_threads(omp);
  }
  int omp_, blas_;
};

}  // namespace

TEST_CASE("repro: blas_description names the BLAS and its kernels") {
  const std::string d = blas_description();
  MESSAGE("BLAS: " << d);
#ifdef OPENBLAS_VERSION
  CHECK(d.rfind("OpenBLAS ", 0) == 0);
  CHECK_FALSE(blas_core().empty());
  CHECK(d.find(blas_core() + " kernels") != std::string::npos);
  {
    ThreadCount tc(1);
    CHECK(blas_description().find(", 1 thread)") != std::string::npos);
  }
  {
    ThreadCount tc(2);
    CHECK(blas_description().find(", 2 threads)") != std::string::npos);
    omp_set_num_threads(1);  // OpenBLAS still at 2: both counts are told
    CHECK(blas_description().find(", 2 threads, engine loops 1)") != std::string::npos);
  }
  // Who chose the kernels: the environment, or OpenBLAS for this CPU (DYNAMIC_ARCH builds).
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (forced && *forced)
    CHECK(d.find(std::string("OPENBLAS_CORETYPE=") + forced) != std::string::npos);
  else if (std::string(openblas_get_config()).find("DYNAMIC_ARCH") != std::string::npos)
    CHECK(d.find("for this CPU") != std::string::npos);
#else
  CHECK(blas_core().empty());
  CHECK(d.find("not OpenBLAS") != std::string::npos);
#endif
}
