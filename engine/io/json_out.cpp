// json_out.cpp — see json_out.h.
#include "engine/io/json_out.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <vector>

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
  return set(key, b);
}
JsonReport& JsonReport::str(const std::string& key, const std::string& v) { return set(key, quote(v)); }
JsonReport& JsonReport::set(const std::string& key, const std::string& encoded) {
  for (auto& item : items_)
    if (item.first == key) {
      item.second = encoded;
      return *this;
    }
  items_.push_back({key, encoded});
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

// ---- output paths ----------------------------------------------------------------------------------
namespace {
namespace fs = std::filesystem;
// Creates and removes a probe file in dir; "" or the reason it cannot.
std::string probe_dir(const fs::path& dir) {
  const fs::path probe = dir / (".dfq_probe_" + std::to_string(::getpid()));
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return std::string("cannot create files in ") + dir.string() + " (" + std::strerror(errno) + ")";
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}
}  // namespace

std::string output_file_problem(const std::string& path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) return "is a folder, not a file";
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) return "folder " + parent.string() + " does not exist";
  return probe_dir(parent);
}

std::string output_dir_problem(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::absolute(dir, ec);
  if (fs::exists(p, ec) && !fs::is_directory(p, ec)) return "exists and is not a folder";
  while (!fs::exists(p, ec)) {
    if (!p.has_parent_path() || p.parent_path() == p) return "no existing folder above it";
    p = p.parent_path();
  }
  if (!fs::is_directory(p, ec)) return p.string() + " is not a folder";
  return probe_dir(p);
}

std::string file_fingerprint(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  uint64_t h = 1469598103934665603ull;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), std::streamsize(buf.size()));
    for (std::streamsize i = 0; i < f.gcount(); ++i) h = (h ^ uint8_t(buf[size_t(i)])) * 1099511628211ull;
  }
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", (unsigned long long)h);
  return s;
}

}  // namespace dfq
