// json_out.h — the small JSON reports the mains write (--json PATH): a flat object of numbers and
// strings, written atomically (PATH.tmp, then renamed; nothing is left behind on failure); checked
// appends; and the checks the mains make on their output paths before any work.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace dfq {

class JsonReport {
 public:
  // A key given again keeps its place and takes the new value (one key, one value).
  JsonReport& num(const std::string& key, double v);
  JsonReport& str(const std::string& key, const std::string& v);
  std::string text() const;  // {"key": value, ...}\n
  void write(const std::string& path) const;  // throws naming the path

 private:
  JsonReport& set(const std::string& key, const std::string& encoded);
  std::vector<std::pair<std::string, std::string>> items_;  // key, encoded value
};

// Writes content to path through path.tmp + rename; throws naming the path.
void write_file_atomic(const std::string& path, const std::string& content);
// Appends line to path (created if missing), checking the write and the flush; on failure the file
// is cut back to its old length (no torn line) and it throws naming the path.
void append_file(const std::string& path, const std::string& line);
// Renames a finished temporary file over path; on failure removes tmp and throws naming path.
void rename_into_place(const std::string& tmp, const std::string& path);

// A problem with writing `path` (a file written atomically through PATH.tmp), or "" when it can be
// written: its folder exists and a probe file can be created there.
std::string output_file_problem(const std::string& path);
// The same for a folder that will be created if missing (its nearest existing ancestor is probed).
std::string output_dir_problem(const std::string& dir);

// FNV-1a 64 of a file's bytes, as 16 hex digits (a checkpoint records its float model's).
std::string file_fingerprint(const std::string& path);

}  // namespace dfq
