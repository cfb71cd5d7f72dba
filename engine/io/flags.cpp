// flags.cpp — see flags.h.
#include "engine/io/flags.h"

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <limits>

namespace dfq {

Flags::Flags(int argc, char** argv, std::string usage) : prog_(argc ? argv[0] : "dfq"), usage_(std::move(usage)) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", usage_.c_str());
      std::exit(0);
    }
    if (a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.'))) {
      std::string name = a, value;
      size_t eq = a.find('=');
      bool has_value = false;
      if (eq != std::string::npos) {
        name = a.substr(0, eq);
        value = a.substr(eq + 1);
        has_value = true;
      } else if (i + 1 < argc) {
        std::string next = argv[i + 1];
        bool next_is_flag = next.size() > 1 && next[0] == '-' && !(std::isdigit(static_cast<unsigned char>(next[1])) || next[1] == '.');
        if (!next_is_flag) {
          value = next;
          has_value = true;
          ++i;
        }
      }
      values_[name] = has_value ? value : std::string("\x01");  // \x01 marks "no value given"
    } else {
      positional_.push_back(a);
    }
  }
}

void Flags::fail(const std::string& msg) const {
  std::fprintf(stderr, "%s: %s (see --help)\n", prog_.c_str(), msg.c_str());
  std::exit(2);
}

std::string Flags::str(const std::string& name, const std::string& def) {
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) return def;
  if (it->second == "\x01") fail("flag " + name + " needs a value");
  return it->second;
}
long long Flags::integer64(const std::string& name, long long def) {
  std::string v = str(name, "");
  if (!values_.count(name)) return def;
  char* end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end) fail("flag " + name + " expects an integer, got '" + v + "'");
  if (errno == ERANGE) fail("flag " + name + ": " + v + " is out of range");
  return x;
}
long long Flags::integer(const std::string& name, long long def) {
  long long x = integer64(name, def);
  if (x < std::numeric_limits<int>::min() || x > std::numeric_limits<int>::max())
    fail("flag " + name + ": " + std::to_string(x) + " is out of range (" + std::to_string(std::numeric_limits<int>::min()) +
         ".." + std::to_string(std::numeric_limits<int>::max()) + ")");
  return x;
}
double Flags::number(const std::string& name, double def) {
  std::string v = str(name, "");
  if (!values_.count(name)) return def;
  char* end = nullptr;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end) fail("flag " + name + " expects a number, got '" + v + "'");
  return x;
}
bool Flags::boolean(const std::string& name) {
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) return false;
  if (it->second != "\x01") {
    // "--flag value": the value was a positional argument after all
    positional_.push_back(it->second);
    it->second = "\x01";
  }
  return true;
}
void Flags::done() {
  for (auto& [name, v] : values_)
    if (!used_.count(name)) fail("unknown flag " + name);
}

}  // namespace dfq
