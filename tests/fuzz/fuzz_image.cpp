// fuzz_image.cpp — libFuzzer target for the image decoders (engine/io/image.h: stb_image and the
// engine's checks before it, on hostile PNG / JPEG / BMP / PGM / PPM / other bytes), the eval
// transform, and the ImageFolder reader (engine/io/dataset.h: the labels-file parser and the
// class-folder scan). The first byte picks the mode:
//   'L'  a labels file and images in a flat folder: the rest is parts split by kSep; part 0 is the
//        labels file, each later part "<name>\n<bytes>" becomes the file images/<name>;
//   'F'  class folders: each part "<class>/<name>\n<bytes>" becomes images/<class>/<name> (a part
//        "<class>/" alone is an empty class folder); names may hold up to two '/';
//   else the whole input is one encoded image (so image files are seeds as they are), decoded with
//        a pixel limit of kFuzzMaxPixels, then through the eval transform at a small size picked by
//        the input's length; the crop-only resize is checked against the whole resize + crop.
// Rules: any input must work or throw std::runtime_error whose message names the file or folder;
// another exception, a crash, a sanitizer report, a leak, a hang or an allocation over
// -malloc_limit_mb is a bug. Files live in a per-process temporary folder, removed at exit.
// Built by CMake with clang++ -fsanitize=fuzzer,address,undefined; see tests/fuzz/README.md.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "engine/io/dataset.h"
#include "engine/io/image.h"

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kSep = "\n--part--\n";
constexpr int kMaxParts = 8;

// The per-process folder: under $TMPDIR if set, else /dev/shm where there is one (4x faster than a
// disk-backed /tmp here), else the system's temporary folder. Removed at exit.
const fs::path& work_dir() {
  static const fs::path dir = [] {
    std::error_code ec;
    fs::path base = std::getenv("TMPDIR") == nullptr && fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm")
                                                                                          : fs::temp_directory_path();
    return base / ("dfq_fuzz_image_" + std::to_string(::getpid()));
  }();
  static const bool cleanup = [] {
    return std::atexit([] {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }) == 0;
  }();
  (void)cleanup;
  return dir;
}

// Images over this many pixels are refused here (the engine's limit is kMaxImagePixels): a small
// file may claim that many, and stb then decodes every one of them (zeros past the data), which
// only measures stb's speed.
constexpr int64_t kFuzzMaxPixels = 1 << 16;

// A small eval transform picked by the input's length (odd and even crops, crops over the size).
dfq::EvalTransform small_transform(size_t size) {
  dfq::EvalTransform tf;
  tf.resize = 1 + static_cast<int64_t>(size % 23);
  tf.crop = 1 + static_cast<int64_t>((size / 23) % 19);
  return tf;
}

void check_image(const dfq::ImageU8& img) {
  if (img.h <= 0 || img.w <= 0 || img.h * img.w > kFuzzMaxPixels ||
      static_cast<int64_t>(img.data.size()) != img.h * img.w * 3)
    __builtin_trap();
}

void fuzz_decode(const uint8_t* data, size_t size) {
  dfq::ImageU8 img;
  try {
    img = dfq::decode_image_rgb(data, static_cast<int64_t>(size), "fuzz", kFuzzMaxPixels);
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find("fuzz") == std::string::npos) __builtin_trap();  // names the file
    return;
  }
  check_image(img);
  const dfq::EvalTransform tf = small_transform(size);
  std::vector<float> out(static_cast<size_t>(3 * tf.crop * tf.crop));
  tf.apply(img, out.data());  // a decoded image must go through (no exception caught here)
  // The crop-only resize gives the bytes of the whole resize then the crop.
  const auto [rh, rw] = dfq::resized_shorter_side(img.h, img.w, tf.resize);
  if (rh * rw <= (1 << 22)) {
    const dfq::ImageU8 a = dfq::resize_center_crop_pil(img, rh, rw, tf.crop, tf.crop);
    const dfq::ImageU8 b = dfq::center_crop(dfq::resize_bilinear_pil(img, rh, rw), tf.crop, tf.crop);
    if (a.h != b.h || a.w != b.w || a.data != b.data) __builtin_trap();
  }
}

// Whether an image file may go into a folder: not one over kFuzzMaxPixels (see there).
bool small_enough(std::string_view bytes) {
  try {
    dfq::decode_image_rgb(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()), "part",
                          kFuzzMaxPixels);
  } catch (const std::runtime_error& e) {
    return std::string(e.what()).find("over the limit") == std::string::npos;
  }
  return true;
}

// A file name from the input: [A-Za-z0-9._-] and at most two '/' (sub-folders), no part
// starting with '.', at most 40 bytes. Empty: not usable.
std::string safe_name(std::string_view s) {
  if (s.empty() || s.size() > 40) return "";
  int slashes = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.' || (c == '/' && ++slashes <= 2);
    if (!ok || (c == '.' && (i == 0 || s[i - 1] == '/'))) return "";
  }
  return std::string(s);
}

// Whether a labels file can name only files under the folder (no absolute path, no "..").
bool labels_stay_inside(std::string_view text) {
  if (text.find("..") != std::string_view::npos) return false;
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '/' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t' || text[i - 1] == ',' ||
                           text[i - 1] == '\n' || text[i - 1] == '\r'))
      return false;
  return true;
}

bool write_file(const fs::path& p, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  std::ofstream f(p, std::ios::binary);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(f);
}

void read_samples(const dfq::ImageFolderDataset& ds) {
  std::vector<float> out(static_cast<size_t>(3 * ds.transform().crop * ds.transform().crop));
  for (int64_t i = 0; i < ds.size(); ++i) {
    (void)ds.label(i);
    try {
      ds.get(i, out.data());
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()).find(ds.samples()[static_cast<size_t>(i)].path) == std::string::npos) __builtin_trap();
    }
  }
}

void fuzz_folder(char mode, std::string_view in) {
  const dfq::EvalTransform tf = small_transform(in.size());
  std::vector<std::string_view> parts;
  while (static_cast<int>(parts.size()) < kMaxParts) {
    size_t at = in.find(kSep);
    parts.push_back(in.substr(0, at));
    if (at == std::string_view::npos) break;
    in.remove_prefix(at + kSep.size());
  }
  const fs::path dir = work_dir() / "d", root = dir / "images";
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(root, ec);
  if (ec) return;
  const bool labels = mode == 'L';
  if (labels && !labels_stay_inside(parts[0])) return;
  for (size_t i = labels ? 1 : 0; i < parts.size(); ++i) {
    std::string_view p = parts[i];
    size_t nl = p.find('\n');
    std::string name = safe_name(p.substr(0, nl));
    if (name.empty()) continue;
    const std::string_view bytes = nl == std::string_view::npos ? std::string_view() : p.substr(nl + 1);
    if (name.back() == '/') {
      fs::create_directories(root / name, ec);
    } else if (small_enough(bytes) && !write_file(root / name, bytes)) {
      return;
    }
  }
  try {
    if (labels) {
      if (!write_file(dir / "labels.txt", parts[0])) return;
      read_samples(dfq::ImageFolderDataset::from_labels_file(root.string(), (dir / "labels.txt").string(), tf));
    } else {
      read_samples(dfq::ImageFolderDataset::from_class_folders(root.string(), tf));
    }
  } catch (const std::runtime_error& e) {
    if (std::string(e.what()).find(dir.string()) == std::string::npos) __builtin_trap();  // names the path
  }
}
}  // namespace

// UBSan halts on every report but those listed in fuzz_image.supp (CMake passes its path; only the
// checks named there are built recoverable). UBSAN_OPTIONS in the environment adds to these.
extern "C" const char* __ubsan_default_options() {
#ifdef DFQ_FUZZ_UBSAN_SUPPRESSIONS
  return "halt_on_error=1:print_stacktrace=1:suppressions=" DFQ_FUZZ_UBSAN_SUPPRESSIONS;
#else
  return "halt_on_error=1:print_stacktrace=1";
#endif
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size >= 1 && (data[0] == 'L' || data[0] == 'F'))
    fuzz_folder(static_cast<char>(data[0]), std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  else
    fuzz_decode(data, size);
  return 0;
}
