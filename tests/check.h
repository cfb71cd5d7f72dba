// check.h — the one comparison helper of the test suite: |a - r| <= atol + rtol * |r| element-wise.
// On failure it prints the label, the worst index, both values and the max abs / rel error.
// Every looser tolerance at a call site carries a comment saying why.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace dfq::test {

struct CloseReport {
  bool ok = true;
  int64_t worst = -1;
  double max_abs = 0, max_rel = 0, worst_excess = 0;
};

inline CloseReport compare_close(const float* a, const float* r, int64_t n, double atol, double rtol) {
  CloseReport rep;
  for (int64_t i = 0; i < n; ++i) {
    double av = a[i], rv = r[i];
    double d = std::fabs(av - rv);
    if (std::isnan(av) != std::isnan(rv)) d = INFINITY;
    rep.max_abs = std::max(rep.max_abs, d);
    if (rv != 0) rep.max_rel = std::max(rep.max_rel, d / std::fabs(rv));
    double excess = d - (atol + rtol * std::fabs(rv));
    if (excess > 0 && (rep.ok || excess > rep.worst_excess)) {
      rep.ok = false;
      rep.worst = i;
      rep.worst_excess = excess;
    }
  }
  return rep;
}

// CHECKs that a (computed) matches r (reference), n elements.
inline bool check_close(const std::string& label, const float* a, const float* r, int64_t n,
                        double atol, double rtol) {
  CloseReport rep = compare_close(a, r, n, atol, rtol);
  if (!rep.ok) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s: mismatch at [%lld]: got %.9g, want %.9g (max abs err %.3g, max rel err %.3g, atol %.3g, rtol %.3g)",
                  label.c_str(), (long long)rep.worst, a[rep.worst], r[rep.worst], rep.max_abs, rep.max_rel, atol, rtol);
    FAIL_CHECK(buf);
  } else {
    CHECK(rep.ok);
  }
  return rep.ok;
}

inline bool check_close(const std::string& label, const std::vector<float>& a, const std::vector<float>& r,
                        double atol, double rtol) {
  if (a.size() != r.size()) {
    FAIL_CHECK(label << ": size " << a.size() << " != reference size " << r.size());
    return false;
  }
  return check_close(label, a.data(), r.data(), (int64_t)a.size(), atol, rtol);
}

}  // namespace dfq::test
