// image.cpp — stb_image decoding and the PIL / torchvision eval transform (see image.h).
// stb's implementation comes from Debian's libstb (linked by CMake); where that library is absent
// CMake defines DFQ_STB_BUILTIN and this file compiles the implementation itself (so does the fuzz
// target, to have stb instrumented too). image_grid and EvalTransform::operator() (the parts that
// make or read Tensors) are in image_tensor.cpp.
// Decoding checks the bytes for what stb 2.27 mishandles (below), asks stbi_info for the header's
// size and refuses more than max_pixels pixels, and only then decodes.
// The resize follows Pillow's src/libImaging/Resample.c (precompute_coeffs, normalize_coeffs_8bpc,
// ImagingResampleHorizontal_8bpc / Vertical_8bpc, ImagingResampleInner) step for step, for any
// window of its output: each output pixel depends on its own index only, so Resize + CenterCrop
// computes just the crop, byte for byte what the whole resize then the crop give.
#include "engine/io/image.h"
#include "engine/io/json_out.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>

#ifdef DFQ_STB_BUILTIN
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#endif
#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

namespace dfq {

// ---- decoding ----------------------------------------------------------------------------------
// Debian's libstb is stb_image 2.27; some hostile files make it misbehave (upstream has fixed several
// since, e.g. nothings/stb issues 1289 and 1291, PR 1297). The engine checks for those itself before
// stb reads a byte (stbi_info included):
//  - only JPEG, PNG, BMP and binary PGM/PPM reach stb (it would also try GIF, PSD, PIC, HDR and TGA,
//    whose test takes much garbage for an image);
//  - JPEG: Huffman tables of more than 256 codes (stb 2.27 writes past its tables), scans using
//    tables no DHT / DQT defined (it reads uninitialised ones) and components no scan decodes (it
//    returns uninitialised memory for them) are refused: see jpeg_problem;
//  - PGM/PPM: a header number over INT_MAX (stb 2.27 overflows an int), 16-bit samples (stb 2.27
//    keeps the low byte of each, and reads past its buffer for a grey image), and a file shorter
//    than its header says (stb 2.27 then returns uninitialised memory as the pixels) are refused.
namespace {
[[noreturn]] void decode_error(const std::string& name, const std::string& why) {
  throw std::runtime_error("dfq: cannot decode image " + name + ": " + why);
}
std::string stb_reason() {
  const char* why = stbi_failure_reason();
  return why ? why : "unknown reason";
}

enum class Format { kJpeg, kPng, kBmp, kPnm, kOther };

// As stb tells them apart: JPEG 0xFF... 0xD8; the PNG signature; "BM"; "P5" / "P6".
Format sniff(const uint8_t* p, int64_t n) {
  if (n >= 2 && p[0] == 0xFF) {
    int64_t i = 0;
    while (i < n && p[i] == 0xFF) ++i;
    return i < n && p[i] == 0xD8 ? Format::kJpeg : Format::kOther;
  }
  if (n >= 8 && std::memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::kPng;
  if (n >= 2 && p[0] == 'B' && p[1] == 'M') return Format::kBmp;
  if (n >= 2 && p[0] == 'P' && (p[1] == '5' || p[1] == '6')) return Format::kPnm;
  return Format::kOther;
}

// "" or why the JPEG is refused. Walks the segments as stb reads them: bytes between segments are
// skipped up to the next 0xFF, fill bytes 0xFF are skipped, the entropy-coded data after SOS runs to
// the next marker that is not RSTn, EOI ends (stb fails without one). So every table and scan stb
// reads is checked (and maybe some it would not reach, in files it fails on anyway). Refused:
//  - a Huffman table (DHT) of more than 256 codes (stb 2.27 writes past its tables);
//  - a scan using a Huffman or quantisation table no DHT / DQT has defined (stb 2.27 reads its
//    uninitialised tables, and past its arrays);
//  - a component of the frame no scan decodes (progressive: no DC-first scan), whose pixels stb
//    2.27 would make from uninitialised memory.
std::string jpeg_problem(const uint8_t* p, int64_t n) {
  auto at = [&](int64_t k) -> int { return k < n ? p[k] : 0; };  // stb reads zeros past the end
  struct Component {
    int id, tq;
    bool scanned;
  };
  std::vector<Component> frame;  // stb reads the first SOF only (another one is an error)
  bool have_frame = false, progressive = false;
  bool huffman[2][4] = {}, quant[4] = {};  // defined: [DC / AC][id], [id]
  int64_t i = 0;
  while (p[i] == 0xFF) ++i;
  ++i;  // SOI
  while (i < n) {
    if (p[i] != 0xFF) {
      ++i;
      continue;
    }
    while (i < n && p[i] == 0xFF) ++i;
    if (i >= n) break;
    const int m = p[i++];
    if (m == 0xD9) {  // EOI
      for (std::size_t c = 0; c < frame.size(); ++c)
        if (!frame[c].scanned)
          return "corrupt JPEG: no " + std::string(progressive ? "DC " : "") + "scan decodes component " +
                 std::to_string(c + 1);
      break;
    }
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // no length
    const int64_t len = (at(i) << 8) | at(i + 1);
    if (len < 2) break;  // stb fails here
    if (m == 0xC4) {     // DHT: tables of (class and id, 16 code counts, the values)
      int64_t k = i + 2, left = len - 2;
      while (left > 0) {
        int codes = 0;
        for (int j = 1; j <= 16; ++j) codes += at(k + j);
        if (codes > 256) return "corrupt JPEG: a Huffman table of " + std::to_string(codes) + " codes (at most 256)";
        if ((at(k) >> 4) <= 1 && (at(k) & 15) <= 3) huffman[at(k) >> 4][at(k) & 15] = true;
        k += 17 + codes;
        left -= 17 + codes;
      }
      if (left != 0) break;  // stb fails here
    } else if (m == 0xDB) {  // DQT: tables of (precision and id, 64 or 128 bytes)
      for (int64_t k = i + 2, left = len - 2; left > 0;) {
        const int size = 1 + ((at(k) >> 4) ? 128 : 64);
        if ((at(k) & 15) <= 3) quant[at(k) & 15] = true;
        k += size;
        left -= size;
      }
    } else if (m >= 0xC0 && m <= 0xC2 && !have_frame) {  // SOF0/1/2: (id, sampling, quantisation table)
      have_frame = true;
      progressive = m == 0xC2;
      for (int c = 0, nc = at(i + 7); c < nc; ++c) frame.push_back({at(i + 8 + 3 * c), at(i + 10 + 3 * c), false});
    } else if (m == 0xDA) {  // SOS: components (id, DC and AC table), spectral selection, approximation
      const int ns = at(i + 2), ss = at(i + 3 + 2 * ns), ah = at(i + 5 + 2 * ns) >> 4;
      const bool uses_dc = !progressive || (ss == 0 && ah == 0), uses_ac = !progressive || ss > 0;
      for (int s = 0; s < ns; ++s) {
        const int id = at(i + 3 + 2 * s), td = at(i + 4 + 2 * s) >> 4, ta = at(i + 4 + 2 * s) & 15;
        if ((uses_dc && td <= 3 && !huffman[0][td]) || (uses_ac && ta <= 3 && !huffman[1][ta]))
          return "corrupt JPEG: a scan uses a Huffman table that is not defined";
        auto c = std::find_if(frame.begin(), frame.end(), [&](const Component& f) { return f.id == id; });
        if (c == frame.end()) continue;  // stb fails here
        if (c->tq <= 3 && !quant[c->tq]) return "corrupt JPEG: a scan uses a quantisation table that is not defined";
        if (uses_dc) c->scanned = true;
      }
    }
    i += len;
    if (m == 0xDA) {  // skip the entropy-coded data
      while (i < n) {
        if (p[i] != 0xFF) {
          ++i;
          continue;
        }
        int64_t j = i;
        while (j < n && p[j] == 0xFF) ++j;
        if (j < n && (p[j] == 0x00 || (p[j] >= 0xD0 && p[j] <= 0xD7))) {
          i = j + 1;
          continue;
        }
        i = j - 1;  // the last 0xFF before the marker
        break;
      }
    }
  }
  return "";
}

// "" or why the PGM / PPM is refused: its header read as stb reads it (whitespace and '#' comments
// before each of width, height and maximum value; the pixels start after the byte that ends the
// maximum value), each number at most INT_MAX, and as many pixel bytes as the header says.
std::string pnm_problem(const uint8_t* p, int64_t n) {
  int64_t pos = 2;
  auto eof = [&] { return pos >= n; };
  auto get = [&]() -> int { return pos < n ? p[pos++] : 0; };
  int c = get();
  auto skip_space = [&] {
    for (;;) {
      while (!eof() && (c == ' ' || (c >= '\t' && c <= '\r'))) c = get();
      if (eof() || c != '#') break;
      while (!eof() && c != '\n' && c != '\r') c = get();
    }
  };
  auto number = [&](int64_t& v) {
    v = 0;
    while (!eof() && c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      if (v > INT32_MAX) return false;
      c = get();
    }
    return true;
  };
  int64_t w = 0, h = 0, maxv = 0;
  skip_space();
  if (!number(w)) return "corrupt PGM/PPM: width over " + std::to_string(INT32_MAX);
  skip_space();
  if (!number(h)) return "corrupt PGM/PPM: height over " + std::to_string(INT32_MAX);
  skip_space();
  if (!number(maxv)) return "corrupt PGM/PPM: maximum value over " + std::to_string(INT32_MAX);
  if (maxv > 255)  // stb 2.27 keeps the low byte of 16-bit samples, and reads past its buffer for a PGM
    return "a 16-bit PGM/PPM (maximum value " + std::to_string(maxv) + "): only 8-bit ones are supported";
  if (w <= 0 || h <= 0) return "";  // the caller refuses images without pixels
  const int64_t bytes = p[1] == '6' ? 3 : 1;
  if (w > INT64_MAX / bytes / h)
    return "corrupt PGM/PPM: " + std::to_string(w) + "x" + std::to_string(h) + " is too large";
  if (n - pos < w * h * bytes)
    return "truncated PGM/PPM: " + std::to_string(n - pos) + " bytes of pixels, the header says " +
           std::to_string(w * h * bytes);
  return "";
}
}  // namespace

ImageU8 decode_image_rgb(const uint8_t* bytes, int64_t size, const std::string& name, int64_t max_pixels) {
  if (size <= 0) decode_error(name, "empty file");
  if (size > INT32_MAX) decode_error(name, "file too large (" + std::to_string(size) + " bytes)");
  const Format format = sniff(bytes, size);
  if (format == Format::kOther) decode_error(name, "not a JPEG, PNG, BMP or binary PGM/PPM file");
  if (format == Format::kJpeg)
    if (std::string why = jpeg_problem(bytes, size); !why.empty()) decode_error(name, why);
  if (format == Format::kPnm)
    if (std::string why = pnm_problem(bytes, size); !why.empty()) decode_error(name, why);
  // The header's dimensions first: stb allocates its buffers from them before it reads any pixel.
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(bytes, static_cast<int>(size), &w, &h, &channels)) decode_error(name, stb_reason());
  if (w <= 0 || h <= 0) decode_error(name, "no pixels");
  const int64_t pixels = static_cast<int64_t>(w) * h;
  if (pixels > max_pixels)
    decode_error(name, std::to_string(w) + "x" + std::to_string(h) + " = " + std::to_string(pixels) +
                           " pixels, over the limit of " + std::to_string(max_pixels) + " (a decompression bomb?)");
  // req_comp 3: grey is replicated, alpha dropped (stb's conversion, as PIL's convert('RGB')).
  std::unique_ptr<stbi_uc, void (*)(void*)> px(
      stbi_load_from_memory(bytes, static_cast<int>(size), &w, &h, &channels, 3), stbi_image_free);
  if (!px) decode_error(name, stb_reason());
  if (w <= 0 || h <= 0 || static_cast<int64_t>(w) * h > max_pixels)  // stb decoded another size than its header's
    decode_error(name, "decoded to " + std::to_string(w) + "x" + std::to_string(h) + " pixels, over the limit of " +
                           std::to_string(max_pixels));
  ImageU8 img;
  img.h = h;
  img.w = w;
  img.data.assign(px.get(), px.get() + static_cast<std::size_t>(w) * h * 3);
  return img;
}

ImageU8 load_image_rgb(const std::string& path, int64_t max_pixels) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) decode_error(path, std::string("cannot open (") + std::strerror(errno) + ")");
  std::streamoff n = f.tellg();
  if (n < 0) decode_error(path, "cannot read");
  if (n > INT32_MAX) decode_error(path, "file too large (" + std::to_string(n) + " bytes)");
  std::vector<uint8_t> bytes(static_cast<std::size_t>(n));
  f.seekg(0);
  if (n > 0 && !f.read(reinterpret_cast<char*>(bytes.data()), n)) decode_error(path, "read error");
  return decode_image_rgb(bytes.data(), static_cast<int64_t>(bytes.size()), path, max_pixels);
}

void save_png(const std::string& path, const ImageU8& img) {
  if (img.h <= 0 || img.w <= 0 || static_cast<int64_t>(img.data.size()) != img.h * img.w * 3)
    throw std::runtime_error("dfq: save_png " + path + ": malformed image");
  // Encoded in memory, then written through write_file_atomic: stbi_write_png's own file path
  // ignores fwrite / fclose errors, so a full disk would leave a truncated PNG and no error.
  std::string png;
  auto sink = [](void* ctx, void* data, int size) { static_cast<std::string*>(ctx)->append(static_cast<char*>(data), size); };
  if (!stbi_write_png_to_func(sink, &png, static_cast<int>(img.w), static_cast<int>(img.h), 3, img.data.data(),
                              static_cast<int>(img.w * 3)))
    throw std::runtime_error("dfq: cannot encode PNG " + path);
  try {
    write_file_atomic(path, png);
  } catch (const std::exception& ex) {
    throw std::runtime_error(std::string("dfq: ") + ex.what());
  }
}

// ---- PIL bilinear resample ---------------------------------------------------------------------
namespace {
constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // (count, 2): first input index, number of inputs
  std::vector<int32_t> k;   // (count, ksize) fixed-point weights
};

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size) and the bilinear filter, for
// the outputs [first, first + count) of out_size (each output's weights depend on its index alone).
Coeffs precompute_coeffs(int in_size, int64_t out_size, int64_t first, int64_t count) {
  const double support_1 = 1.0;  // bilinear support
  double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / static_cast<double>(out_size);
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = support_1 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.bounds.resize(static_cast<std::size_t>(count) * 2);
  c.k.assign(static_cast<std::size_t>(count) * c.ksize, 0);
  std::vector<double> kk(c.ksize);
  for (int64_t i = 0; i < count; ++i) {
    double center = 0.0 + (static_cast<double>(first + i) + 0.5) * scale;
    double ww = 0.0, ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    int x = 0;
    for (; x < xmax; ++x) {
      double w = bilinear_filter((x + xmin - center + 0.5) * ss);
      kk[x] = w;
      ww += w;
    }
    for (x = 0; x < xmax; ++x)
      if (ww != 0.0) kk[x] /= ww;
    for (; x < c.ksize; ++x) kk[x] = 0;
    c.bounds[i * 2] = xmin;
    c.bounds[i * 2 + 1] = xmax;
    for (x = 0; x < c.ksize; ++x) {
      double v = kk[x] * (1 << kPrecisionBits);
      c.k[static_cast<std::size_t>(i) * c.ksize + x] = static_cast<int32_t>(kk[x] < 0 ? -0.5 + v : 0.5 + v);
    }
  }
  return c;
}

inline uint8_t clip8(int32_t v) {
  v >>= kPrecisionBits;  // arithmetic shift, as Pillow's lookup index
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// The window [top, top + win_h) x [left, left + win_w) of Pillow's resize of `in` to out_h x out_w
// (ImagingResampleInner: horizontal pass over the input rows the vertical pass reads, a round to
// uint8, then the vertical pass; a pass is skipped where that side keeps its size), zeros where
// the window leaves the resized image. Only the outputs inside the window are computed.
ImageU8 resize_window(const ImageU8& in, int64_t out_h, int64_t out_w, int64_t top, int64_t left, int64_t win_h,
                      int64_t win_w) {
  if (in.h <= 0 || in.w <= 0 || out_h <= 0 || out_w <= 0)
    throw std::invalid_argument("dfq: resize of an empty image or to an empty size");
  if (in.h > INT32_MAX || in.w > INT32_MAX || static_cast<int64_t>(in.data.size()) != in.h * in.w * 3)
    throw std::invalid_argument("dfq: resize of a malformed image");
  if (win_h < 1 || win_w < 1 || win_w > INT64_MAX / 3 / win_h)
    throw std::invalid_argument("dfq: resize window " + std::to_string(win_h) + "x" + std::to_string(win_w) +
                                ": bad size");
  ImageU8 out;
  out.h = win_h;
  out.w = win_w;
  out.data.assign(static_cast<std::size_t>(win_h * win_w * 3), 0);
  // the outputs [y0, y1) x [x0, x1) of the resized image fall inside the window
  const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min(top + win_h, out_h);
  const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min(left + win_w, out_w);
  if (y1 <= y0 || x1 <= x0) return out;
  const int64_t ny = y1 - y0, nx = x1 - x0;
  const bool need_h = out_w != in.w, need_v = out_h != in.h;
  Coeffs cv;
  int64_t r_first = y0, r_last = y1;  // the input rows the vertical pass reads
  if (need_v) {
    cv = precompute_coeffs(static_cast<int>(in.h), out_h, y0, ny);
    r_first = cv.bounds[0];  // bounds grow with the output index
    r_last = cv.bounds[(ny - 1) * 2] + cv.bounds[(ny - 1) * 2 + 1];
  }
  // rows[r - r_first]: input row r after the horizontal pass (or as it is), outputs [x0, x1)
  std::vector<uint8_t> tmp;
  auto row = [&](int64_t r) -> const uint8_t* {
    return need_h ? tmp.data() + (r - r_first) * nx * 3 : in.px(r, x0);
  };
  if (need_h) {
    Coeffs ch = precompute_coeffs(static_cast<int>(in.w), out_w, x0, nx);
    tmp.resize(static_cast<std::size_t>((r_last - r_first) * nx * 3));
    for (int64_t r = r_first; r < r_last; ++r) {
      const uint8_t* irow = in.px(r, 0);
      uint8_t* orow = tmp.data() + (r - r_first) * nx * 3;
      for (int64_t xx = 0; xx < nx; ++xx) {
        int xmin = ch.bounds[xx * 2], xmax = ch.bounds[xx * 2 + 1];
        const int32_t* k = &ch.k[static_cast<std::size_t>(xx) * ch.ksize];
        int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < xmax; ++x) {
          const uint8_t* p = irow + (x + xmin) * 3;
          s0 += p[0] * k[x];
          s1 += p[1] * k[x];
          s2 += p[2] * k[x];
        }
        orow[xx * 3] = clip8(s0);
        orow[xx * 3 + 1] = clip8(s1);
        orow[xx * 3 + 2] = clip8(s2);
      }
    }
  }
  for (int64_t yy = 0; yy < ny; ++yy) {
    uint8_t* orow = out.px(y0 + yy - top, x0 - left);
    if (!need_v) {
      std::memcpy(orow, row(y0 + yy), static_cast<std::size_t>(nx * 3));
      continue;
    }
    int ymin = cv.bounds[yy * 2], ymax = cv.bounds[yy * 2 + 1];
    const int32_t* k = &cv.k[static_cast<std::size_t>(yy) * cv.ksize];
    for (int64_t xx = 0; xx < nx; ++xx) {
      int32_t s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
      for (int y = 0; y < ymax; ++y) {
        const uint8_t* p = row(y + ymin) + xx * 3;
        s0 += p[0] * k[y];
        s1 += p[1] * k[y];
        s2 += p[2] * k[y];
      }
      orow[xx * 3] = clip8(s0);
      orow[xx * 3 + 1] = clip8(s1);
      orow[xx * 3 + 2] = clip8(s2);
    }
  }
  return out;
}

// Where crop pixel 0 sits in the source along one axis (negative: zero padding before the image).
int64_t crop_offset(int64_t size, int64_t crop) {
  if (crop > size) return -((crop - size) / 2);  // torchvision pads (crop - size) // 2 before
  int64_t d = size - crop;  // int(round(d / 2.0)), Python rounds half to even
  int64_t k = d / 2;
  if (d % 2 == 1 && k % 2 == 1) ++k;
  return k;
}
void check_crop(int64_t crop_h, int64_t crop_w) {
  if (crop_h < 1 || crop_w < 1)
    throw std::invalid_argument("dfq: crop to " + std::to_string(crop_h) + "x" + std::to_string(crop_w) +
                                ": sizes must be >= 1");
}
}  // namespace

ImageU8 resize_bilinear_pil(const ImageU8& in, int64_t out_h, int64_t out_w) {
  if (out_h == in.h && out_w == in.w && in.h > 0 && in.w > 0) return in;  // Image.resize returns a copy
  return resize_window(in, out_h, out_w, 0, 0, out_h, out_w);
}

ImageU8 resize_center_crop_pil(const ImageU8& img, int64_t out_h, int64_t out_w, int64_t crop_h, int64_t crop_w) {
  check_crop(crop_h, crop_w);
  return resize_window(img, out_h, out_w, crop_offset(out_h, crop_h), crop_offset(out_w, crop_w), crop_h, crop_w);
}

std::array<int64_t, 2> resized_shorter_side(int64_t h, int64_t w, int64_t size) {
  int64_t shorter = std::min(h, w), longer = std::max(h, w);
  // Python: int(size * long / short), a double division truncated.
  int64_t new_long = static_cast<int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return w <= h ? std::array<int64_t, 2>{new_long, size} : std::array<int64_t, 2>{size, new_long};
}

ImageU8 center_crop(const ImageU8& img, int64_t crop_h, int64_t crop_w) {
  check_crop(crop_h, crop_w);
  ImageU8 out;
  out.h = crop_h;
  out.w = crop_w;
  out.data.assign(static_cast<std::size_t>(crop_h * crop_w * 3), 0);
  int64_t top = crop_offset(img.h, crop_h), left = crop_offset(img.w, crop_w);
  for (int64_t y = 0; y < crop_h; ++y) {
    int64_t sy = y + top;
    if (sy < 0 || sy >= img.h) continue;
    int64_t x0 = std::max<int64_t>(0, -left), x1 = std::min<int64_t>(crop_w, img.w - left);
    if (x1 > x0) std::memcpy(out.px(y, x0), img.px(sy, x0 + left), static_cast<std::size_t>((x1 - x0) * 3));
  }
  return out;
}

void to_normalized_chw(const ImageU8& img, const NormalizeParams& norm, float* out) {
  const int64_t plane = img.h * img.w;
  for (int c = 0; c < 3; ++c) {
    const float m = norm.mean[c], s = norm.std[c];
    float* o = out + c * plane;
    for (int64_t i = 0; i < plane; ++i) {
      // ToTensor: float(u8) / 255; Normalize: (x - mean) / std — float32, in that order.
      float x = static_cast<float>(img.data[static_cast<std::size_t>(i * 3 + c)]) / 255.0f;
      o[i] = (x - m) / s;
    }
  }
}

void EvalTransform::apply(const ImageU8& img, float* out) const {
  if (resize < 1 || crop < 1)
    throw std::invalid_argument("dfq: eval transform needs resize >= 1 and crop >= 1, got " + std::to_string(resize) +
                                " and " + std::to_string(crop));
  if (img.h <= 0 || img.w <= 0) throw std::invalid_argument("dfq: eval transform of an empty image");
  auto [rh, rw] = resized_shorter_side(img.h, img.w, resize);
  // Resize + CenterCrop: only the resized pixels the crop keeps (a 1-pixel-high banner would
  // otherwise resize to resize x (resize * width) pixels).
  to_normalized_chw(resize_center_crop_pil(img, rh, rw, crop, crop), norm, out);
}

}  // namespace dfq
