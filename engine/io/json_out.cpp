// json_out.cpp — see json_out.h.
#include "engine/io/json_out.h"

#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>

namespace dfq {

namespace {
std::string quote(const std::string& s) {
  std::string o = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\', o += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      o += b;
    } else o += c;
  }
  return o + "\"";
}
}  // namespace

JsonReport& JsonReport::num(const std::string& key, double v) {
  char b[64];
  if (std::isfinite(v)) std::snprintf(b, sizeof b, "%.10g", v);
  else std::snprintf(b, sizeof b, "null");
  items_.push_back({key, b});
  return *this;
}
JsonReport& JsonReport::str(const std::string& key, const std::string& v) {
  items_.push_back({key, quote(v)});
  return *this;
}
std::string JsonReport::text() const {
  std::string t = "{";
  for (size_t i = 0; i < items_.size(); ++i) t += (i ? ", " : "") + quote(items_[i].first) + ": " + items_[i].second;
  return t + "}\n";
}
void JsonReport::write(const std::string& path) const { write_file_atomic(path, text()); }

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write " + path);
    f << content;
    f.close();  // flushes: a full disk shows here, not in the destructor
    if (f.fail()) {
      std::remove(tmp.c_str());
      throw std::runtime_error("cannot write " + path + " (disk full or not writable)");
    }
  }
  rename_into_place(tmp, path);
}

void append_file(const std::string& path, const std::string& line) {
  std::FILE* f = std::fopen(path.c_str(), "ab");
  if (!f) throw std::runtime_error("cannot append to " + path + ": " + std::strerror(errno));
  const long before = std::ftell(f);
  bool ok = std::fwrite(line.data(), 1, line.size(), f) == line.size();
  ok = std::fflush(f) == 0 && ok;
  const int err = errno;
  if (!ok && before >= 0) {  // no torn line left behind: cut the file back to where it was
    if (ftruncate(fileno(f), before) != 0) { /* the error below is what the user needs */ }
  }
  ok = std::fclose(f) == 0 && ok;
  if (!ok) throw std::runtime_error("cannot append to " + path + ": " + std::strerror(err ? err : EIO));
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + path + ": " + ec.message());
  }
}

}  // namespace dfq
