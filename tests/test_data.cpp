// test_data.cpp — the data pipelines (engine/io/image.*, dataset.*, loader.*):
//  - Fashion-MNIST preprocessing against the golden input (shared/golden/fmnist_resnet18/input64.npy);
//  - the ImageNet eval transform against torchvision (tests/fixtures/*_eval.npy, written by
//    tools/make_image_fixtures.py from the real images in tests/fixtures/images/);
//  - ImageFolder label order, labels-file formats, errors naming the file, loader determinism.
// Every TEST_CASE is named "data: ...".
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>

#include "engine/io/dataset.h"
#include "engine/io/idx.h"
#include "engine/io/image.h"
#include "engine/io/loader.h"
#include "engine/io/npy.h"
#include "tests/check.h"

using namespace dfq;
using dfq::test::check_close;
namespace fs = std::filesystem;

namespace {
const std::string kFixtures = (fs::path(__FILE__).parent_path() / "fixtures").string();
const std::string kGoldenFmnist = std::string(DFQ_GOLDEN_DIR) + "/fmnist_resnet18/";

// A fresh temporary folder, removed at the end of the scope.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("dfq_test_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& rel) const { return (path / rel).string(); }
};

ImageU8 solid(int64_t h, int64_t w, uint8_t r, uint8_t g, uint8_t b) {
  ImageU8 im;
  im.h = h;
  im.w = w;
  im.data.resize(static_cast<std::size_t>(h * w * 3));
  for (int64_t i = 0; i < h * w; ++i) im.data[i * 3] = r, im.data[i * 3 + 1] = g, im.data[i * 3 + 2] = b;
  return im;
}

void write_png(const std::string& path, uint8_t v) {
  fs::create_directories(fs::path(path).parent_path());
  save_png(path, solid(20 + v % 7, 30, v, static_cast<uint8_t>(255 - v), 7));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// ---- Fashion-MNIST ------------------------------------------------------------------------------
TEST_CASE("data: an IDX image file whose N*H*W passes int64 is refused, not read as an empty one") {
  // N = H = 2^31, W = 4 and no pixels: N*H*W wraps to 0 in int64, which matched the 16-byte file.
  TempDir t("idx_huge");
  const unsigned char header[16] = {0, 0, 8, 3, 0x80, 0, 0, 0, 0x80, 0, 0, 0, 0, 0, 0, 4};
  std::ofstream(t / "huge-idx3-ubyte", std::ios::binary).write(reinterpret_cast<const char*>(header), 16);
  std::string m = error_of([&] { load_idx_images(t / "huge-idx3-ubyte"); });
  CHECK(m.find("huge-idx3-ubyte") != std::string::npos);
  CHECK(m.find("truncated IDX image file") != std::string::npos);
}

TEST_CASE("data: Fashion-MNIST test images match the golden input convention") {
  Tensor want = load_npy(kGoldenFmnist + "input64.npy");
  Tensor want_y = load_npy(kGoldenFmnist + "labels64_int64.npy");
  REQUIRE(want.shape() == Shape{64, 3, 32, 32});
  FashionMnistDataset ds("test");
  REQUIRE(ds.size() == 10000);
  // Through the loader with threads: the first batch must be the first 64 test images, in order.
  DataLoader loader(ds, {.batch_size = 64, .workers = 2, .prefetch = 2});
  CHECK(loader.num_batches() == (10000 + 63) / 64);
  loader.start_epoch();
  Batch b;
  REQUIRE(loader.next(b));
  REQUIRE(b.images.shape() == Shape{64, 3, 32, 32});
  check_close("fmnist input64", b.images.to_vector(), want.to_vector(), 1e-6, 0);
  CHECK(b.labels.to_vector_i64() == want_y.to_vector_i64());
  REQUIRE(loader.next(b));  // the second batch is items 64..127
  CHECK(b.index == 1);
  CHECK(b.items.front() == 64);
}

TEST_CASE("data: Fashion-MNIST augmentation (flip, shift) is a deterministic function of the seed") {
  FashionMnistDataset plain("test");
  FashionMnistDataset flip("test", kFashionMnistDir, {.hflip = true, .max_shift = 0});
  Generator g(3);
  flip.begin_epoch(&g);
  std::vector<float> a(3072), f(3072);
  int flipped = 0;
  for (int64_t i = 0; i < 64; ++i) {
    plain.get(i, a.data());
    flip.get(i, f.data());
    bool mirrored = true, same = true;
    for (int c = 0; c < 3; ++c)
      for (int y = 0; y < 32; ++y)
        for (int x = 0; x < 32; ++x) {
          mirrored &= f[c * 1024 + y * 32 + x] == a[c * 1024 + y * 32 + (31 - x)];
          same &= f[c * 1024 + y * 32 + x] == a[c * 1024 + y * 32 + x];
        }
    CHECK((mirrored || same));
    flipped += mirrored && !same;
  }
  CHECK(flipped > 16);  // about half of 64
  CHECK(flipped < 48);
  // A shift moves the content: item shifted by (dy, dx) is the padded image moved, zeros shifted in.
  std::vector<uint8_t> img(784);
  for (int i = 0; i < 784; ++i) img[i] = static_cast<uint8_t>(i % 251);
  std::vector<float> base(3072), sh(3072);
  fashion_mnist_item(img.data(), base.data());
  fashion_mnist_item(img.data(), sh.data(), false, 3, -2);
  const float pad = (0.f - 0.2860f) / 0.3530f;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) {
      int sy = y - 3, sx = x + 2;
      float want = (sy >= 0 && sy < 32 && sx >= 0 && sx < 32) ? base[sy * 32 + sx] : pad;
      REQUIRE(sh[y * 32 + x] == want);
    }
  FashionMnistDataset aug("test", kFashionMnistDir, {.hflip = true, .max_shift = 4});
  std::vector<float> tmp(3072);
  CHECK(!error_of([&] { aug.get(0, tmp.data()); }).empty());  // no begin_epoch: a clear error
  CHECK(error_of([&] { aug.begin_epoch(nullptr); }).find("Generator") != std::string::npos);
}

TEST_CASE("data: loader output is identical for any number of workers and fixed by the seed") {
  FashionMnistDataset ds("test", kFashionMnistDir, {.hflip = true, .max_shift = 4});
  auto run = [&](int workers, int prefetch, uint64_t seed, int64_t max_batches) {
    DataLoader loader(ds, {.batch_size = 100, .shuffle = true, .workers = workers, .prefetch = prefetch});
    Generator g(seed);
    loader.start_epoch(&g);
    std::vector<float> imgs;
    std::vector<int64_t> labs;
    Batch b;
    for (int64_t k = 0; k < max_batches && loader.next(b); ++k) {
      CHECK(b.index == k);
      auto v = b.images.to_vector();
      imgs.insert(imgs.end(), v.begin(), v.end());
      auto l = b.labels.to_vector_i64();
      labs.insert(labs.end(), l.begin(), l.end());
    }
    return std::make_pair(imgs, labs);
  };
  auto ref = run(0, 1, 11, 12);
  CHECK(ref.second.size() == 1200);
  CHECK(run(2, 1, 11, 12) == ref);
  CHECK(run(3, 5, 11, 12) == ref);
  CHECK(run(2, 3, 12, 12) != ref);
  // Abandoning an epoch midway (destructor with workers blocked on a full queue) must not hang.
  run(2, 2, 11, 3);
  // The whole epoch: every item exactly once; counts known up front; partial last batch.
  FashionMnistDataset plain("test");
  DataLoader loader(plain, {.batch_size = 300, .shuffle = true, .workers = 2});
  CHECK(loader.num_batches() == 34);
  CHECK(loader.num_samples() == 10000);
  Generator g(5);
  loader.start_epoch(&g);
  std::vector<int> seen(10000, 0);
  int64_t n = 0, last = 0;
  for (Batch b; loader.next(b);) {
    for (int64_t i : b.items) seen[i]++;
    n += b.labels.numel();
    last = b.labels.numel();
  }
  CHECK(n == 10000);
  CHECK(last == 10000 - 33 * 300);
  CHECK(std::all_of(seen.begin(), seen.end(), [](int s) { return s == 1; }));
  DataLoader dl(plain, {.batch_size = 300, .drop_last = true, .workers = 1});
  CHECK(dl.num_batches() == 33);
  CHECK(dl.num_samples() == 9900);
  CHECK(!error_of([&] { dl.start_epoch(); DataLoader(plain, {.shuffle = true}).start_epoch(); }).empty());
}

// ---- images against torchvision -------------------------------------------------------------------
TEST_CASE("data: eval transform (Resize 256, CenterCrop 224, ToTensor, Normalize) matches torchvision on real images") {
  EvalTransform tf;
  struct Case {
    const char* name;
    bool lossless;
  };
  // rocket.jpg 640x427 colour photo (downscale); wizard.jpg 265x352 progressive JPEG; objects.jpg
  // 256x171 grey JPEG (upscale); coins.png 384x303 grey PNG photo.
  for (Case c : {Case{"rocket.jpg", false}, Case{"wizard.jpg", false}, Case{"objects.jpg", false},
                 Case{"coins.png", true}}) {
    std::string stem = fs::path(c.name).stem().string();
    Tensor want = load_npy(kFixtures + "/" + stem + "_eval.npy");
    REQUIRE(want.shape() == Shape{3, 224, 224});
    ImageU8 img = load_image_rgb(kFixtures + "/images/" + c.name);
    Tensor got = tf(img);
    REQUIRE(got.shape() == want.shape());
    std::vector<float> g = got.to_vector(), w = want.to_vector();
    double max_px = 0;  // in [0,1] pixel units
    int64_t n_diff = 0;  // values off by more than half a level
    for (int ch = 0; ch < 3; ++ch) {
      const int64_t plane = 224 * 224;
      // JPEG: stb_image's decoder (IDCT, chroma upsampling, YCbCr rounding) differs from PIL's
      // libjpeg-turbo by a few levels on some pixels, so up to 2/255 per pixel in [0,1] units, i.e.
      // 2/255/std after Normalize. PNG decodes identically; then the resize is bit-exact with PIL
      // and only float32 rounding of Normalize remains (+1e-6 for that rounding in the JPEG bound).
      double atol = c.lossless ? 1e-5 : 2.0 / 255.0 / tf.norm.std[ch] + 1e-6;
      check_close(std::string(c.name) + " channel " + std::to_string(ch), g.data() + ch * plane,
                  w.data() + ch * plane, plane, atol, 0);
      for (int64_t i = 0; i < plane; ++i) {
        double d = std::fabs(double(g[ch * plane + i]) - w[ch * plane + i]) * tf.norm.std[ch];
        max_px = std::max(max_px, d);
        n_diff += d > 0.5 / 255.0;
      }
    }
    MESSAGE(std::string(c.name) << " " << img.w << "x" << img.h << ": max |dfq - torchvision| = "
                                << std::lround(max_px * 255.0) << "/255 (pixel units), " << n_diff
                                << " of " << 3 * 224 * 224 << " values differ");
  }
}

TEST_CASE("data: RGBA PNG decodes to RGB with the alpha dropped, as PIL's convert('RGB')") {
  Tensor want = load_npy(kFixtures + "/headphones_rgba_rgb_u8.npy");
  ImageU8 img = load_image_rgb(kFixtures + "/images/headphones_rgba.png");
  REQUIRE(want.shape() == Shape{img.h, img.w, 3});
  CHECK(img.data == want.to_vector_u8());
}

TEST_CASE("data: Resize / CenterCrop geometry follows torchvision") {
  using A = std::array<int64_t, 2>;
  CHECK(resized_shorter_side(427, 640, 256) == A{256, 383});  // int(256 * 640 / 427) = int(383.7)
  CHECK(resized_shorter_side(352, 265, 256) == A{340, 256});
  CHECK(resized_shorter_side(300, 300, 256) == A{256, 256});
  // Crop offsets round half to even: (257-224)/2 = 16.5 -> 16, (259-224)/2 = 17.5 -> 18.
  for (auto [h, top] : {std::pair<int64_t, int64_t>{257, 16}, {259, 18}, {256, 16}, {224, 0}}) {
    ImageU8 im = solid(h, 1, 0, 0, 0);
    for (int64_t y = 0; y < h; ++y) im.px(y, 0)[0] = static_cast<uint8_t>(y);
    ImageU8 c = center_crop(im, 224, 1);
    CHECK(c.px(0, 0)[0] == top);
  }
  // Smaller than the crop: zero padding, (crop - size) // 2 before.
  ImageU8 small = solid(3, 2, 9, 9, 9);
  ImageU8 c = center_crop(small, 6, 5);
  CHECK(c.px(0, 0)[0] == 0);
  CHECK(c.px(1, 1)[0] == 9);
  CHECK(c.px(1, 0)[0] == 0);
  CHECK(c.px(3, 2)[0] == 9);
  CHECK(c.px(4, 2)[0] == 0);
  CHECK(c.px(1, 3)[0] == 0);
  // A constant image stays constant through the resize (weights sum to one in fixed point).
  ImageU8 r = resize_bilinear_pil(solid(37, 91, 200, 3, 77), 256, 629);
  CHECK(std::all_of(r.data.begin(), r.data.end(), [](uint8_t v) { return v == 200 || v == 3 || v == 77; }));
}

// ---- folders and files --------------------------------------------------------------------------
TEST_CASE("data: ImageFolder classes sorted by name give the labels; files sorted, found recursively") {
  TempDir t("imagefolder");
  write_png(t / "dog/b.png", 10);
  write_png(t / "dog/a.PNG", 20);
  write_png(t / "dog/sub/c.png", 30);
  write_png(t / "Zebra/z.png", 40);  // upper case sorts first (byte order, as Python's sorted)
  write_png(t / "cat/x.png", 50);
  { std::ofstream(t / "cat/notes.txt") << "not an image"; }
  auto ds = ImageFolderDataset::from_class_folders(t.path.string());
  CHECK(ds.classes() == std::vector<std::string>{"Zebra", "cat", "dog"});
  REQUIRE(ds.size() == 5);
  std::vector<std::string> names;
  std::vector<int64_t> labels;
  for (const auto& s : ds.samples()) {
    names.push_back(fs::path(s.path).filename().string());
    labels.push_back(s.label);
  }
  CHECK(names == std::vector<std::string>{"z.png", "x.png", "a.PNG", "b.png", "c.png"});
  CHECK(labels == std::vector<int64_t>{0, 1, 2, 2, 2});
  // Through the loader: labels and pixel values (a solid colour stays solid: (v/255 - mean) / std).
  DataLoader loader(ds, {.batch_size = 2, .workers = 2});
  loader.start_epoch();
  std::vector<int64_t> got;
  Batch b;
  REQUIRE(loader.next(b));
  REQUIRE(b.images.shape() == Shape{2, 3, 224, 224});
  float want_r = (40.f / 255.f - 0.485f) / 0.229f, want_g = ((255.f - 40.f) / 255.f - 0.456f) / 0.224f;
  CHECK(b.images.data<float>()[0] == want_r);
  CHECK(b.images.data<float>()[224 * 224 + 5] == want_g);
  do {
    auto l = b.labels.to_vector_i64();
    got.insert(got.end(), l.begin(), l.end());
  } while (loader.next(b));
  CHECK(got == labels);
  // An empty class folder is an error naming it (as torchvision).
  fs::create_directories(t.path / "empty_class");
  CHECK(error_of([&] { ImageFolderDataset::from_class_folders(t.path.string()); }).find("empty_class") != std::string::npos);
}

TEST_CASE("data: flat folder with a labels file, both formats") {
  TempDir t("labelsfile");
  write_png(t / "val/img_002.png", 1);
  write_png(t / "val/img_001.jpg.png", 2);
  write_png(t / "val/img_003.png", 3);
  { std::ofstream(t / "pairs.txt") << "# name label\nimg_003.png 7\nimg_001.jpg.png,2\n\nimg_002.png\t0\n"; }
  auto a = ImageFolderDataset::from_labels_file(t / "val", t / "pairs.txt");
  REQUIRE(a.size() == 3);
  CHECK(fs::path(a.samples()[0].path).filename() == "img_003.png");
  CHECK(a.label(0) == 7);
  CHECK(a.label(1) == 2);
  CHECK(a.label(2) == 0);
  // One label per line, in sorted file-name order.
  { std::ofstream(t / "column.txt") << "5\n6\n7\n"; }
  auto b = ImageFolderDataset::from_labels_file(t / "val", t / "column.txt");
  REQUIRE(b.size() == 3);
  CHECK(fs::path(b.samples()[0].path).filename() == "img_001.jpg.png");
  CHECK(b.label(0) == 5);
  CHECK(b.label(2) == 7);
  // Class names (e.g. WordNet ids) map through their sorted set.
  { std::ofstream(t / "names.txt") << "img_001.jpg.png n02\nimg_002.png n01\nimg_003.png n02\n"; }
  auto c = ImageFolderDataset::from_labels_file(t / "val", t / "names.txt");
  CHECK(c.classes() == std::vector<std::string>{"n01", "n02"});
  CHECK(c.label(0) == 1);
  CHECK(c.label(1) == 0);
  // Errors name the file.
  { std::ofstream(t / "short.txt") << "1\n2\n"; }
  CHECK(error_of([&] { ImageFolderDataset::from_labels_file(t / "val", t / "short.txt"); }).find("short.txt") != std::string::npos);
  { std::ofstream(t / "missing.txt") << "nope.png 1\n"; }
  CHECK(error_of([&] { ImageFolderDataset::from_labels_file(t / "val", t / "missing.txt"); }).find("nope.png") != std::string::npos);
  CHECK(error_of([&] { ImageFolderDataset::from_labels_file(t / "val", t / "absent.txt"); }).find("absent.txt") != std::string::npos);
}

TEST_CASE("data: an unreadable image gives one clear error naming the file, also through the loader") {
  TempDir t("badimage");
  write_png(t / "cls/good.png", 5);
  { std::ofstream(t / "cls/broken.jpg") << "this is not a JPEG"; }
  std::string e = error_of([&] { load_image_rgb(t / "cls/broken.jpg"); });
  CHECK(e.find("cannot decode image") != std::string::npos);
  CHECK(e.find("broken.jpg") != std::string::npos);
  e = error_of([&] { load_image_rgb(t / "cls/absent.png"); });
  CHECK(e.find("absent.png") != std::string::npos);
  auto ds = ImageFolderDataset::from_class_folders(t.path.string());
  REQUIRE(ds.size() == 2);
  for (int workers : {0, 2}) {
    DataLoader loader(ds, {.batch_size = 1, .workers = workers});
    loader.start_epoch();
    Batch b;
    e = error_of([&] {
      while (loader.next(b)) {
      }
    });
    CHECK(e.find("broken.jpg") != std::string::npos);
  }
}

// ---- hostile files: each case was a bug; "found by the fuzzer" marks those tests/fuzz/fuzz_image.cpp
// found, the others were found while writing it -------------------------------------------------------
namespace {
std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}
std::vector<uint8_t> bytes_of(const std::string& s) { return {s.begin(), s.end()}; }
std::string decode_error_of(const std::vector<uint8_t>& b, int64_t max_pixels = kMaxImagePixels) {
  return error_of([&] { decode_image_rgb(b.data(), static_cast<int64_t>(b.size()), "hostile.img", max_pixels); });
}
void put_be32(std::vector<uint8_t>& b, std::size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
}  // namespace

TEST_CASE("data: an image whose header claims more pixels than the limit is refused before decoding") {
  TempDir t("bigheader");
  save_png(t / "small.png", solid(2, 3, 1, 2, 3));
  std::vector<uint8_t> png = read_bytes(t / "small.png");
  REQUIRE(png.size() > 33);
  CHECK(decode_image_rgb(png.data(), static_cast<int64_t>(png.size()), "small", 6).h == 2);
  CHECK(decode_error_of(png, 5).find("3x2 = 6 pixels, over the limit of 5") != std::string::npos);
  // IHDR (bytes 16..28, CRC after) claims 20000 x 10000: refused by the header, nothing allocated.
  put_be32(png, 16, 20000);
  put_be32(png, 20, 10000);
  put_be32(png, 29, static_cast<uint32_t>(crc32(0, png.data() + 12, 17)));
  std::string e = decode_error_of(png);
  CHECK(e.find("hostile.img") != std::string::npos);
  CHECK(e.find("over the limit of 178956970") != std::string::npos);
  // The limit is PIL's decompression-bomb error threshold; load_image_rgb takes one too.
  CHECK(kMaxImagePixels == 2 * 89478485);
  CHECK(error_of([&] { load_image_rgb(kFixtures + "/images/objects.jpg", 256 * 171 - 1); }).find("objects.jpg") !=
        std::string::npos);
  CHECK(load_image_rgb(kFixtures + "/images/objects.jpg", 256 * 171).w == 256);
}

TEST_CASE("data: a PGM/PPM without pixels, cut short or with numbers over INT_MAX is an error") {
  // stb 2.27 decoded the first (found by the fuzzer: the comment eats "2 2", height 0) to an empty
  // image the eval transform then divided by, and returned uninitialised memory for the second.
  CHECK(decode_error_of(bytes_of(std::string("P5\n#2 2\n255\n\xf2\x17<\0\x1a\xc9\xa4\xf5", 20))).find("no pixels") !=
        std::string::npos);
  std::string pgm = "P5\n# 4 x 4\n4 4\n255\n";
  CHECK(decode_error_of(bytes_of(pgm + std::string(15, 'x')))
            .find("truncated PGM/PPM: 15 bytes of pixels, the header says 16") !=
        std::string::npos);
  std::vector<uint8_t> full = bytes_of(pgm + std::string(16, 'x'));
  ImageU8 img = decode_image_rgb(full.data(), static_cast<int64_t>(full.size()), "full");
  CHECK((img.h == 4 && img.w == 4 && img.px(3, 3)[0] == 'x' && img.px(3, 3)[2] == 'x'));
  CHECK(decode_error_of(bytes_of("P6\n3000000000 1\n255\n")).find("width over 2147483647") != std::string::npos);
  CHECK(decode_error_of(bytes_of("P6 1 1 255 ")).find("truncated PGM/PPM: 0 bytes") != std::string::npos);
  // 16-bit samples: stb 2.27 kept the low byte of each (big-endian) sample, and read past its
  // buffer for a grey image.
  std::string e16 = decode_error_of(bytes_of(std::string("P5 2 1 65535 \x12\x34\xab\xcd", 17)));
  CHECK(e16.find("16-bit PGM/PPM (maximum value 65535): only 8-bit ones are supported") != std::string::npos);
}

TEST_CASE("data: JPEGs stb 2.27 mishandles are refused: Huffman tables over 256 codes, undefined tables, no scan") {
  // DHT: class/id 0, 16 counts of 255 (4080 codes), 4080 values (found by the fuzzer: UBSan, index 257
  // out of bounds for stbi__huffman::size[257]).
  std::vector<uint8_t> dht = {0xFF, 0xC4, 0x10, 0x03, 0x00};  // length 2 + 17 + 4080 = 4099
  dht.insert(dht.end(), 16, 0xFF);
  dht.insert(dht.end(), 4080, 0x00);
  std::vector<uint8_t> jpg = {0xFF, 0xD8};
  jpg.insert(jpg.end(), dht.begin(), dht.end());
  jpg.insert(jpg.end(), {0xFF, 0xD9});
  CHECK(decode_error_of(jpg).find("corrupt JPEG: a Huffman table of 4080 codes (at most 256)") != std::string::npos);
  // The same table after a real image's scan, before its EOI: stb reads it there too.
  std::vector<uint8_t> real = read_bytes(kFixtures + "/images/objects.jpg");
  REQUIRE((real.size() > 4 && real[real.size() - 2] == 0xFF && real.back() == 0xD9));
  CHECK(decode_image_rgb(real.data(), static_cast<int64_t>(real.size()), "objects").w == 256);
  real.insert(real.end() - 2, dht.begin(), dht.end());
  CHECK(decode_error_of(real).find("Huffman table of 4080 codes") != std::string::npos);
  // objects.jpg: DQT, SOF0 (component 1, quantisation table at byte 101), DHT DC 0, DHT AC 0 (table
  // class and id at byte 135), SOS at byte 196. A table the scan uses but no DHT / DQT defines: stb
  // 2.27 read its uninitialised table (found by the fuzzer: reads past stbi__bmask and maxcode).
  std::vector<uint8_t> jpg0 = read_bytes(kFixtures + "/images/objects.jpg");
  REQUIRE((jpg0[135] == 0x10 && jpg0[101] == 0x00 && jpg0[196] == 0xFF && jpg0[197] == 0xDA));
  std::vector<uint8_t> bad = jpg0;
  bad[135] = 0x11;  // the AC table is defined as table 1, the scan uses table 0
  CHECK(decode_error_of(bad).find("a scan uses a Huffman table that is not defined") != std::string::npos);
  bad = jpg0;
  bad[101] = 0x01;  // the component's quantisation table 1 is never defined
  CHECK(decode_error_of(bad).find("a scan uses a quantisation table that is not defined") != std::string::npos);
  // No scan at all (SOS to EOI cut): stb 2.27 returned uninitialised memory as the image.
  bad.assign(jpg0.begin(), jpg0.begin() + 196);
  bad.insert(bad.end(), {0xFF, 0xD9});
  CHECK(decode_error_of(bad).find("corrupt JPEG: no scan decodes component 1") != std::string::npos);
}

TEST_CASE("data: only JPEG, PNG, BMP and binary PGM/PPM are decoded, whatever the file is called") {
  // stb 2.27 would decode these (its TGA test takes many files for a TGA; found by the fuzzer: a
  // 117-byte TGA claiming 8224 x 8224 pixels ran into libFuzzer's 10 s timeout).
  std::vector<uint8_t> tga = {0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 24, 0, 10, 20, 30};
  CHECK(decode_error_of(tga).find("not a JPEG, PNG, BMP or binary PGM/PPM file") != std::string::npos);
  CHECK(decode_error_of(bytes_of("GIF89a\1\0\1\0\0\0\0")).find("not a JPEG, PNG") != std::string::npos);
  CHECK(decode_error_of(bytes_of("P3\n1 1\n255\n1 2 3\n")).find("not a JPEG, PNG") != std::string::npos);
}

TEST_CASE("data: Resize + CenterCrop computes only the crop, byte for byte the whole resize then the crop") {
  auto noise = [](int64_t h, int64_t w) {
    ImageU8 im = solid(h, w, 0, 0, 0);
    for (std::size_t i = 0; i < im.data.size(); ++i) im.data[i] = static_cast<uint8_t>((i * 2654435761u) >> 13);
    return im;
  };
  struct Case {
    int64_t h, w, out_h, out_w, crop_h, crop_w;
  };
  for (Case c : {Case{37, 91, 256, 629, 224, 224}, Case{300, 256, 300, 256, 224, 224}, Case{300, 256, 256, 256, 225, 7},
                 Case{5, 300, 5, 17, 9, 3}, Case{91, 37, 31, 37, 40, 40}, Case{1, 1, 3, 3, 2, 2},
                 Case{1, 37, 256, 9472, 224, 224},
                 Case{427, 640, 256, 383, 224, 224}, Case{13, 17, 4, 5, 1, 1}}) {
    ImageU8 im = noise(c.h, c.w);
    ImageU8 a = resize_center_crop_pil(im, c.out_h, c.out_w, c.crop_h, c.crop_w);
    ImageU8 b = center_crop(resize_bilinear_pil(im, c.out_h, c.out_w), c.crop_h, c.crop_w);
    CHECK((a.h == b.h && a.w == b.w));
    CHECK_MESSAGE(a.data == b.data, c.h << "x" << c.w << " -> " << c.out_h << "x" << c.out_w << " crop " << c.crop_h);
  }
  // A 1 x 20000 banner: Resize(256) makes it 256 x 5120000 (the whole resize was 3.9 GB); only the
  // crop is computed. Its pixels are those of input columns 9990..10009 alone, resized 256-fold.
  ImageU8 banner = noise(1, 20000);
  EvalTransform tf;
  Tensor got = tf(banner);
  ImageU8 part = solid(1, 20, 0, 0, 0);
  std::copy(banner.px(0, 9990), banner.px(0, 10010), part.data.begin());
  ImageU8 want = resize_bilinear_pil(part, 256, 20 * 256);
  const int64_t top = 16, left = (5120000 - 224) / 2 - 9990 * 256;  // crop offsets, shifted
  std::vector<float> g = got.to_vector();
  int64_t bad = 0;
  for (int64_t ch = 0; ch < 3; ++ch)
    for (int64_t y = 0; y < 224; ++y)
      for (int64_t x = 0; x < 224; ++x) {
        float v = (static_cast<float>(want.px(top + y, left + x)[ch]) / 255.0f - tf.norm.mean[ch]) / tf.norm.std[ch];
        bad += g[(ch * 224 + y) * 224 + x] != v;
      }
  CHECK(bad == 0);
  tf.crop = 0;
  CHECK(error_of([&] { tf(banner); }).find("crop >= 1") != std::string::npos);
}

TEST_CASE("data: labels files with labels too large for 64 bits or NUL bytes, labels outside the classes: errors") {
  TempDir t("biglabels");
  write_png(t / "val/a.png", 1);
  write_png(t / "val/b.png", 2);
  // std::stoll threw std::out_of_range("stoll") here, naming neither the file nor the line.
  { std::ofstream(t / "pairs.txt") << "a.png 1\nb.png 99999999999999999999\n"; }
  { std::ofstream(t / "column.txt") << "1\n-99999999999999999999\n"; }
  for (const char* f : {"pairs.txt", "column.txt"}) {
    std::string e = error_of([&] { ImageFolderDataset::from_labels_file(t / "val", t / f); });
    CHECK(e.find(std::string(f) + ":2: label is not a class index") != std::string::npos);
  }
  // A NUL byte cut the name short where the file was opened (found by the fuzzer: "b.png\0..." read
  // b.png, and its errors were cut short there too).
  { std::ofstream(t / "nul.txt", std::ios::binary) << std::string("a.png 0\nb.png\0x 1\n", 18); }
  CHECK(error_of([&] { ImageFolderDataset::from_labels_file(t / "val", t / "nul.txt"); }).find("nul.txt:2: a NUL byte") !=
        std::string::npos);
  // A label the model has no class for: topk_correct read past the logits' row.
  Tensor logits = Tensor::from_vector({0.f, 1.f, 2.f, 3.f, 2.f, 1.f}, {2, 3});
  CHECK(topk_correct(logits, Tensor::from_vector_i64({2, 1}, {2}), 1) == 1);
  CHECK(error_of([&] { topk_correct(logits, Tensor::from_vector_i64({2, 3}, {2}), 1); })
            .find("label 3 out of range [0, 3)") != std::string::npos);
}
