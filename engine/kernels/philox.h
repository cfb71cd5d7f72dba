// philox.h — the counter-based generator Philox 4x32-10 (Salmon et al., SC'11), shared by the CPU
// kernels and the CUDA kernels so that the same (seed, offset) gives the same numbers on both.
//
// Element i of a draw uses counter (offset + i / 4) and lane i % 4. Normals pair lanes (0,1) and
// (2,3) through Box-Muller, computed in double and rounded once to float, so CPU and GPU agree.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define DFQ_HD __host__ __device__ __forceinline__
#else
#define DFQ_HD inline
#endif

namespace dfq::philox {

struct U4 { uint32_t x[4]; };

DFQ_HD uint32_t mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

// 10 rounds of Philox4x32 on counter ctr (64-bit, upper two words 0) with key = seed.
DFQ_HD U4 philox4x32_10(uint64_t ctr, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(ctr), c1 = static_cast<uint32_t>(ctr >> 32), c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  U4 out;
  out.x[0] = c0; out.x[1] = c1; out.x[2] = c2; out.x[3] = c3;
  return out;
}

// 24-bit uniform in [0, 1)
DFQ_HD double to_unit(uint32_t v) { return static_cast<double>(v >> 8) * (1.0 / 16777216.0); }

DFQ_HD float uniform_at(uint64_t seed, uint64_t offset, int64_t i, float lo, float hi) {
  U4 r = philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed);
  return static_cast<float>(lo + (static_cast<double>(hi) - lo) * to_unit(r.x[i % 4]));
}

DFQ_HD float normal_at(uint64_t seed, uint64_t offset, int64_t i, float mean, float stddev) {
  U4 r = philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed);
  int lane = static_cast<int>(i % 4), base = lane & ~1;
  double u1 = (static_cast<double>(r.x[base] >> 8) + 1.0) * (1.0 / 16777216.0);  // (0, 1]
  double u2 = to_unit(r.x[base + 1]);
  double rad = sqrt(-2.0 * log(u1));
  double ang = 6.283185307179586476925 * u2;
  double z = (lane & 1) ? rad * sin(ang) : rad * cos(ang);
  return static_cast<float>(mean + stddev * z);
}

DFQ_HD int64_t randint_at(uint64_t seed, uint64_t offset, int64_t i, int64_t lo, int64_t hi) {
  U4 r = philox4x32_10(offset + static_cast<uint64_t>(i) / 4, seed);
  uint64_t range = static_cast<uint64_t>(hi - lo);
  return lo + static_cast<int64_t>(static_cast<uint64_t>(r.x[i % 4]) % range);
}

}  // namespace dfq::philox
