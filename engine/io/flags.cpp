// flags.cpp — see flags.h.
#include "engine/io/flags.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace dfq {

namespace {
// "-x", "--name" and "--name=v" are flags; "-3", "-.5" and "-" are values.
bool looks_like_flag(const std::string& a) {
  return a.size() > 1 && a[0] == '-' && !(std::isdigit(static_cast<unsigned char>(a[1])) || a[1] == '.');
}
}  // namespace

Flags::Flags(int argc, char** argv, std::string usage)
    : prog_(argc ? std::filesystem::path(argv[0]).filename().string() : "dfq"), usage_(std::move(usage)) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      std::printf("%s", usage_.c_str());
      std::exit(0);
    }
    if (!looks_like_flag(a)) {
      positional_.push_back({i, a});
      continue;
    }
    Value v;
    std::string name = a;
    if (size_t eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      v.text = a.substr(eq + 1);
      v.given = v.attached = true;
    } else if (i + 1 < argc && !looks_like_flag(argv[i + 1])) {
      v.text = argv[i + 1];
      v.given = true;
      v.next_index = ++i;
    }
    values_[name] = v;  // given twice: the last one counts (scripts append the user's flags)
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
  if (!it->second.given) fail("flag " + name + " needs a value");
  return it->second.text;
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
  if (!std::isfinite(x)) fail("flag " + name + " expects a finite number, got '" + v + "'");
  return x;
}
std::string Flags::choice(const std::string& name, const std::string& def, const std::vector<std::string>& choices) {
  std::string v = str(name, def);
  if (std::find(choices.begin(), choices.end(), v) != choices.end()) return v;
  std::string list;
  for (const auto& c : choices) list += (list.empty() ? "" : ", ") + c;
  fail("flag " + name + " must be one of " + list + ", got '" + v + "'");
}
bool Flags::boolean(const std::string& name) {
  used_[name] = true;
  auto it = values_.find(name);
  if (it == values_.end()) return false;
  Value& v = it->second;
  if (v.attached) {
    std::string t = v.text;
    for (char& c : t) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (t == "true" || t == "1" || t == "yes") return true;
    if (t == "false" || t == "0" || t == "no") return false;
    fail("switch " + name + " takes no value (or =true / =false), got '" + v.text + "'");
  }
  if (v.given) {  // "--switch word": the word was a positional argument after all
    positional_.push_back({v.next_index, v.text});
    std::sort(positional_.begin(), positional_.end());
    swallowed_.push_back({name, v.text});
    v.given = false;
  }
  return true;
}
std::vector<std::string> Flags::positional() {
  positional_read_ = true;
  std::vector<std::string> out;
  for (const auto& [i, s] : positional_) out.push_back(s);
  return out;
}
void Flags::done() {
  for (auto& [name, v] : values_)
    if (!used_.count(name)) fail("unknown flag " + name);
  if (positional_read_ || positional_.empty()) return;
  const std::string& word = positional_.front().second;
  for (const auto& [sw, w] : swallowed_)
    if (w == word)
      fail("unexpected argument '" + word + "' after " + sw + ": a switch takes no value (write " + sw + "=false to turn it off)");
  fail("unexpected argument '" + word + "'");
}

std::vector<double> parse_number_list(const std::string& text, const std::string& flag) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t pos = 0;
    double v = 0;
    try {
      v = std::stod(item, &pos);
    } catch (const std::exception&) {
      pos = std::string::npos;
    }
    if (item.empty() || pos != item.size() || !std::isfinite(v))
      throw std::invalid_argument(flag + ": '" + item + "' is not a number (a comma-separated list, e.g. 2,4,8)");
    out.push_back(v);
  }
  if (out.empty() || text.back() == ',') throw std::invalid_argument(flag + ": '" + text + "' is not a comma-separated list");
  return out;
}

}  // namespace dfq
