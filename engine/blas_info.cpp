// blas_info.cpp — see blas_info.h.
#include "engine/blas_info.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <sstream>

namespace dfq {

#ifdef OPENBLAS_VERSION
namespace {
std::string threading() {
  switch (openblas_get_parallel()) {
    case 0: return "single-threaded";
    case 1: return "pthreads";
    case 2: return "OpenMP";
  }
  return "unknown threading";
}
}  // namespace

std::string blas_core() {
  const char* c = openblas_get_corename();
  return c ? c : "";
}

std::string blas_description() {
  // openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ... USE_OPENMP Haswell MAX_THREADS=64"
  std::istringstream cfg(openblas_get_config() ? openblas_get_config() : "");
  std::string name, version, word;
  cfg >> name >> version;
  bool dynamic = false;
  while (cfg >> word) dynamic = dynamic || word == "DYNAMIC_ARCH";
  std::string s = (name.empty() ? std::string("OpenBLAS") : name) + (version.empty() ? "" : " " + version) + " (" +
                  blas_core() + " kernels, ";
  const char* forced = std::getenv("OPENBLAS_CORETYPE");
  if (!dynamic)
    s += "fixed at build time, ";
  else if (forced && *forced)
    s += std::string("OPENBLAS_CORETYPE=") + forced + ", ";
  else
    s += "for this CPU, ";
  // OpenBLAS keeps its own count (openblas_set_num_threads, which in the OpenMP build also sets the
  // OpenMP default; omp_set_num_threads alone leaves it), the engine's loops use the OpenMP
  // default: both are told when they differ.
  const int bt = openblas_get_num_threads(), ot = omp_get_max_threads();
  s += threading() + ", " + std::to_string(bt) + (bt == 1 ? " thread" : " threads");
  if (openblas_get_parallel() == 2 && bt != ot) s += ", engine loops " + std::to_string(ot);
  return s + ")";
}
#else
std::string blas_core() { return ""; }
std::string blas_description() { return "BLAS: not OpenBLAS (kernel family unknown)"; }
#endif

}  // namespace dfq
