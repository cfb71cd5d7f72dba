// image_folder.cpp — ImageFolderDataset (dataset.h): the class-folder scan, the labels-file parser
// and reading a sample through the eval transform. Kept apart from the Fashion-MNIST dataset so the
// fuzz target (tests/fuzz/fuzz_image.cpp) builds it without the engine core.
// Rules: every error a folder or labels file can cause is a std::runtime_error naming the path.
#include "engine/io/dataset.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>

namespace fs = std::filesystem;

namespace dfq {

namespace {
std::string lower_ext(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return "";
  std::string e = name.substr(dot);
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}
bool is_unsupported_image_ext(const std::string& name) {
  std::string e = lower_ext(name);
  return e == ".tif" || e == ".tiff" || e == ".webp";
}
void require_dir(const std::string& path, const char* what) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) throw std::runtime_error(std::string("dfq: ") + what + " " + path + ": not a folder");
}
// The image files directly in `dir` (not recursive), sorted by name.
std::vector<std::string> image_files_in(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
    if (!e.is_regular_file()) continue;
    std::string n = e.path().filename().string();
    if (is_unsupported_image_ext(n))
      throw std::runtime_error("dfq: " + e.path().string() + ": TIFF/WebP images are not supported (convert to PNG)");
    if (is_image_file(n)) names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  return names;
}
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> f;
  std::string cur;
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == ',' || c == '\r') {
      if (!cur.empty()) f.push_back(cur), cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) f.push_back(cur);
  return f;
}
// Whether s is written as an integer ([+-]digits); v is its value, or -1 where that does not fit
// int64_t (callers refuse labels < 0, so a label too large for any class is refused with them).
bool parse_index(const std::string& s, int64_t& v) {
  if (s.empty()) return false;
  std::size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
  if (i == s.size()) return false;
  for (std::size_t j = i; j < s.size(); ++j)
    if (!std::isdigit(static_cast<unsigned char>(s[j]))) return false;
  const char* first = s.data() + (s[0] == '+' ? 1 : 0);  // from_chars takes '-' but not '+'
  if (std::from_chars(first, s.data() + s.size(), v).ec != std::errc()) v = -1;
  return true;
}
}  // namespace

bool is_image_file(const std::string& name) {
  std::string e = lower_ext(name);
  return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp" || e == ".ppm" || e == ".pgm";
}

// ---- ImageFolderDataset --------------------------------------------------------------------------
int64_t ImageFolderDataset::num_classes() const {
  return std::max<int64_t>(int64_t(classes_.size()), Dataset::num_classes());
}

ImageFolderDataset ImageFolderDataset::from_class_folders(const std::string& root, EvalTransform tf) {
  require_dir(root, "image folder");
  ImageFolderDataset ds;
  ds.tf_ = tf;
  for (const auto& e : fs::directory_iterator(root, fs::directory_options::follow_directory_symlink))
    if (e.is_directory()) ds.classes_.push_back(e.path().filename().string());
  std::sort(ds.classes_.begin(), ds.classes_.end());
  if (ds.classes_.empty()) throw std::runtime_error("dfq: image folder " + root + ": no class sub-folders");
  std::vector<std::string> empty;
  for (std::size_t c = 0; c < ds.classes_.size(); ++c) {
    // os.walk(sorted) + sorted(fnames): files ordered by (folder path, file name).
    std::vector<std::pair<std::string, std::string>> files;
    fs::path cdir = fs::path(root) / ds.classes_[c];
    auto add_dir = [&](const fs::path& d) {
      for (const std::string& n : image_files_in(d.string())) files.emplace_back(d.string(), n);
    };
    add_dir(cdir);
    for (const auto& e : fs::recursive_directory_iterator(cdir, fs::directory_options::follow_directory_symlink))
      if (e.is_directory()) add_dir(e.path());
    std::sort(files.begin(), files.end());
    if (files.empty()) empty.push_back(ds.classes_[c]);
    for (auto& [d, n] : files) ds.samples_.push_back({(fs::path(d) / n).string(), static_cast<int64_t>(c)});
  }
  if (!empty.empty()) {
    std::string list;
    for (const auto& n : empty) list += (list.empty() ? "" : ", ") + n;
    throw std::runtime_error("dfq: image folder " + root + ": no image files in the class folder(s) " + list);
  }
  return ds;
}

ImageFolderDataset ImageFolderDataset::from_labels_file(const std::string& root, const std::string& labels_file,
                                                        EvalTransform tf) {
  require_dir(root, "image folder");
  std::ifstream in(labels_file);
  if (!in) throw std::runtime_error("dfq: cannot open labels file " + labels_file);
  std::vector<std::vector<std::string>> rows;
  std::vector<int64_t> line_no;
  std::string line;
  for (int64_t ln = 1; std::getline(in, line); ++ln) {
    if (line.find('\0') != std::string::npos)  // no file name holds one: a binary file, not a labels file
      throw std::runtime_error("dfq: labels file " + labels_file + ":" + std::to_string(ln) +
                               ": a NUL byte (not a text file?)");
    std::vector<std::string> f = split_fields(line);
    if (f.empty() || f[0][0] == '#') continue;
    if (!rows.empty() && f.size() != rows[0].size())
      throw std::runtime_error("dfq: labels file " + labels_file + ":" + std::to_string(ln) + ": expected " +
                               std::to_string(rows[0].size()) + " field(s) like the first line, got " +
                               std::to_string(f.size()));
    if (f.size() > 2)
      throw std::runtime_error("dfq: labels file " + labels_file + ":" + std::to_string(ln) +
                               ": expected '<file> <label>' or '<label>'");
    rows.push_back(std::move(f));
    line_no.push_back(ln);
  }
  if (rows.empty()) throw std::runtime_error("dfq: labels file " + labels_file + ": no labels");
  auto bad_label = [&](std::size_t i) {
    return std::runtime_error("dfq: labels file " + labels_file + ":" + std::to_string(line_no[i]) +
                              ": label is not a class index (an integer in [0, 2^63)): '" + rows[i].back() + "'");
  };
  ImageFolderDataset ds;
  ds.tf_ = tf;
  if (rows[0].size() == 1) {
    std::vector<std::string> files = image_files_in(root);
    if (files.size() != rows.size())
      throw std::runtime_error("dfq: labels file " + labels_file + " has " + std::to_string(rows.size()) +
                               " labels but " + root + " has " + std::to_string(files.size()) + " image files");
    for (std::size_t i = 0; i < rows.size(); ++i) {
      int64_t v;
      if (!parse_index(rows[i][0], v) || v < 0) throw bad_label(i);
      ds.samples_.push_back({(fs::path(root) / files[i]).string(), v});
    }
    return ds;
  }
  // "<file> <label>": integer labels, or class names mapped through their sorted set.
  bool numeric = true;
  for (std::size_t i = 0; i < rows.size() && numeric; ++i) {
    int64_t v;
    numeric = parse_index(rows[i][1], v);
  }
  std::map<std::string, int64_t> name_to_idx;
  if (!numeric) {
    std::set<std::string> names;
    for (const auto& r : rows) names.insert(r[1]);
    for (const auto& n : names) {
      name_to_idx.emplace(n, static_cast<int64_t>(ds.classes_.size()));
      ds.classes_.push_back(n);
    }
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::string path = (fs::path(root) / rows[i][0]).string();
    std::error_code ec;
    if (!fs::is_regular_file(path, ec))
      throw std::runtime_error("dfq: labels file " + labels_file + ":" + std::to_string(line_no[i]) + ": no file " + path);
    int64_t v = 0;
    if (numeric) {
      parse_index(rows[i][1], v);
      if (v < 0) throw bad_label(i);
    } else {
      v = name_to_idx.at(rows[i][1]);
    }
    ds.samples_.push_back({path, v});
  }
  return ds;
}

int64_t ImageFolderDataset::get(int64_t index, float* out) const {
  const ImageSample& s = samples_.at(static_cast<std::size_t>(index));
  tf_.apply(load_image_rgb(s.path), out);
  return s.label;
}

}  // namespace dfq
