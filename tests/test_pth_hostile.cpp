// test_pth_hostile.cpp — corrupt and hostile checkpoints, made at run time from the tiny golden files
// or from bytes written here: every truncation, every single-byte corruption, bad magic, a pickle
// calling os.system, absurd sizes that would overflow an allocation, bad ZIP offsets. Each must end
// in a std::runtime_error (never a crash, a hang or a huge allocation).
// Every TEST_CASE is named "pth hostile: ...".
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/io/pth.h"
#include "tests/check.h"
#include "tests/pth_builder.h"

using namespace dfq;
using namespace dfq::test;

namespace {
const std::string kPth = std::string(DFQ_GOLDEN_DIR) + "/pth/";
const char* kTiny[] = {"tiny_zip.pth", "tiny_tar.pth", "tiny_legacy_v1.pth"};

// The checkpoint owns a copy of the bytes (its tensors point into them).
PthCheckpoint read_bytes(const std::string& s) {
  auto buf = std::make_shared<std::string>(s);
  return read_pth(Bytes{reinterpret_cast<const uint8_t*>(buf->data()), buf->size(), buf}, "test");
}
// Reads and converts every tensor; 0 = fine, 1 = runtime_error, 2 = any other exception.
int outcome(const std::string& s, std::string* msg = nullptr) {
  try {
    PthCheckpoint ck = read_bytes(s);
    for (const auto& t : ck.tensors) {
      std::vector<uint8_t> buf(t.nbytes());
      t.read_into(buf.data());
    }
    return 0;
  } catch (const std::runtime_error& e) {
    if (msg) *msg = e.what();
    return 1;
  } catch (...) {
    return 2;
  }
}
std::string error_of(const std::string& s) {
  std::string msg;
  CHECK(outcome(s, &msg) == 1);
  return msg;
}
uint32_t rd32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
void wr32(std::string& s, size_t at, uint32_t v) { std::memcpy(s.data() + at, &v, 4); }
std::string one_tensor_zip(const std::string& cls, int64_t storage_numel, std::vector<int64_t> size,
                           std::vector<int64_t> stride, int64_t offset, const std::string& record) {
  return zip_checkpoint(state_dict_pickle({{"w", cls, "0", storage_numel, offset, size, stride}}), {{"0", record}});
}
}  // namespace

TEST_CASE("pth hostile: every truncation of the tiny files fails cleanly") {
  for (const char* f : kTiny) {
    std::string s = read_file(kPth + f);
    REQUIRE(outcome(s) == 0);
    // A TAR may lose the zero padding after its end-of-archive marker (two zero blocks) without
    // losing anything: those truncations may still read.
    size_t end = s.size();
    if (std::string(f) == "tiny_tar.pth") end = (s.find_last_not_of('\0') / 512 + 1) * 512 + 1024;
    int bad = 0;
    for (size_t n = 0; n < end; ++n) bad += outcome(s.substr(0, n)) != 1;
    INFO(std::string(f));
    CHECK(bad == 0);
  }
}

TEST_CASE("pth hostile: every single-byte corruption of the tiny files is handled") {
  for (const char* f : kTiny) {
    std::string s = read_file(kPth + f);
    int crashes = 0;
    for (size_t k = 0; k < s.size(); ++k) {
      for (uint8_t x : {uint8_t(0xFF), uint8_t(0x01)}) {
        std::string c = s;
        c[k] = static_cast<char>(c[k] ^ x);
        crashes += outcome(c) == 2;
      }
    }
    INFO(std::string(f));
    CHECK(crashes == 0);
  }
}

TEST_CASE("pth hostile: not a checkpoint") {
  CHECK(error_of("").find("empty file") != std::string::npos);
  CHECK(error_of("hello, world").find("not a PyTorch checkpoint") != std::string::npos);
  CHECK(error_of(PickleWriter().proto().integer(1).stop().b).find("not a PyTorch checkpoint") != std::string::npos);
  std::string z = read_file(kPth + "tiny_zip.pth");
  z[3] = 5;  // PK\3\5
  CHECK(error_of(z).find("not a PyTorch checkpoint") != std::string::npos);
  // a zip that is not a checkpoint, and a TorchScript archive
  CHECK(error_of(make_zip({{"a/readme.txt", "hi"}})).find("without data.pkl") != std::string::npos);
  CHECK(error_of(make_zip({{"m/data.pkl", "\x80\x02}."}, {"m/constants.pkl", "\x80\x02)."}})).find("TorchScript") != std::string::npos);
  // a top-level list, a dict without tensors
  CHECK(error_of(zip_checkpoint(PickleWriter().proto().empty_list().stop().b, {})).find("holds a list") != std::string::npos);
  CHECK(error_of(zip_checkpoint(PickleWriter().proto().empty_dict().stop().b, {})).find("no tensors") != std::string::npos);
}

TEST_CASE("pth hostile: globals outside the whitelist are refused by name") {
  std::string evil = PickleWriter().proto().global("os", "system").str("touch /tmp/dfq_pwned").raw("\x85").reduce().stop().b;
  CHECK(error_of(zip_checkpoint(evil, {})).find("refused global os.system") != std::string::npos);
  CHECK(error_of(legacy_checkpoint(evil, {})).find("refused global os.system") != std::string::npos);
  std::string stack_global = PickleWriter().proto().str("builtins").str("eval").raw("\x93").stop().b;
  CHECK(error_of(zip_checkpoint(stack_global, {})).find("refused global builtins.eval") != std::string::npos);
  // a refused global nested deep inside an otherwise valid state dict
  std::string nested = PickleWriter().proto().empty_dict().str("w").global("subprocess", "Popen").empty_tuple().reduce().setitem().stop().b;
  CHECK(error_of(zip_checkpoint(nested, {})).find("refused global subprocess.Popen") != std::string::npos);
  CHECK(std::fopen("/tmp/dfq_pwned", "r") == nullptr);
}

TEST_CASE("pth hostile: absurd sizes never reach an allocation") {
  std::string four = raw_bytes(std::vector<float>{1, 2, 3, 4});
  // storage numel far beyond its record
  CHECK(error_of(one_tensor_zip("FloatStorage", int64_t{1} << 60, {int64_t{1} << 60}, {1}, 0, four)).find("declares") != std::string::npos);
  // numel overflowing 64 bits
  CHECK(error_of(one_tensor_zip("FloatStorage", 4, {int64_t{1} << 40, int64_t{1} << 40}, {0, 0}, 0, four)).find("overflows") != std::string::npos);
  // stride 0: 2^31 elements from a 4-element storage
  CHECK(error_of(one_tensor_zip("FloatStorage", 4, {int64_t{1} << 31}, {0}, 0, four)).find("overlapping") != std::string::npos);
  // offset or extent past the storage; strides that overflow
  CHECK(error_of(one_tensor_zip("FloatStorage", 4, {2}, {1}, int64_t{1} << 62, four)).find("outside its storage") != std::string::npos);
  CHECK(error_of(one_tensor_zip("FloatStorage", 4, {2, 2}, {1, 3}, 0, four)).find("past the end") != std::string::npos);
  CHECK(error_of(one_tensor_zip("FloatStorage", 4, {3, 3}, {INT64_MAX / 2, 1}, 0, four)).find("overflow") != std::string::npos);
  CHECK(error_of(one_tensor_zip("FloatStorage", 4, {4}, {-1}, 0, four)).find("negative") != std::string::npos);
  // an unsupported dtype is named
  CHECK(error_of(one_tensor_zip("IntStorage", 4, {4}, {1}, 0, four)).find("w has dtype int32") != std::string::npos);
  // many tensors sharing one 1 MiB storage would make 600 MiB of output
  {
    std::string mib(1 << 20, '\0');
    std::vector<TensorSpec> specs;
    for (int k = 0; k < 600; ++k) specs.push_back({"t" + std::to_string(k), "FloatStorage", "0", 1 << 18, 0, {1 << 18}, {1}});
    CHECK(error_of(zip_checkpoint(state_dict_pickle(specs), {{"0", mib}})).find("8x") != std::string::npos);
  }
  // pickle operands: string length, memo index, integer width, nesting, cycles
  CHECK(error_of(zip_checkpoint(std::string("\x80\x02X\xff\xff\xff\xff", 7), {})).find("truncated") != std::string::npos);
  CHECK(error_of(zip_checkpoint(PickleWriter().proto().long_get(0xFFFFFFF0u).stop().b, {})).find("never stored") != std::string::npos);
  std::string long1 = std::string("\x80\x02\x8a\xc8", 4) + std::string(200, '\x7f') + ".";
  CHECK(error_of(zip_checkpoint(long1, {})).find("does not fit 64 bits") != std::string::npos);
  std::string deep = "\x80\x02)";
  for (int k = 0; k < 200000; ++k) deep += "\x85";
  CHECK(error_of(zip_checkpoint(deep + ".", {})).find("holds a tuple") != std::string::npos);
  std::string cycle("\x80\x02]q\x00h\x00" "a.", 9);  // l = []; l.append(l)
  CHECK(error_of(zip_checkpoint(cycle, {})).find("holds a list") != std::string::npos);
  CHECK(error_of(zip_checkpoint(std::string("\x80\x02(K\x01.", 6), {})).find("STOP inside a MARK") != std::string::npos);
  CHECK(error_of(zip_checkpoint(std::string("\x80\x02R.", 4), {})).find("stack underflow") != std::string::npos);
}

TEST_CASE("pth hostile: bad ZIP offsets and sizes") {
  const std::string z = read_file(kPth + "tiny_zip.pth");
  const size_t eocd = z.size() - 22;
  REQUIRE(rd32(z, eocd) == 0x06054b50u);
  const uint32_t cd = rd32(z, eocd + 16);
  REQUIRE(rd32(z, cd) == 0x02014b50u);
  {  // central directory offset beyond the file
    std::string c = z;
    wr32(c, eocd + 16, 0x7FFFFFF0u);
    CHECK(error_of(c).find("central directory outside") != std::string::npos);
  }
  {  // central directory size beyond the file
    std::string c = z;
    wr32(c, eocd + 12, 0x7FFFFFF0u);
    CHECK(outcome(c) == 1);
  }
  {  // first entry's local header offset beyond the file
    std::string c = z;
    wr32(c, cd + 42, 0x7FFFFFF0u);
    CHECK(error_of(c).find("bad local header offset") != std::string::npos);
  }
  {  // first entry's sizes beyond the file
    std::string c = z;
    wr32(c, cd + 20, 0x7FFFFFF0u);
    wr32(c, cd + 24, 0x7FFFFFF0u);
    CHECK(error_of(c).find("past the end") != std::string::npos);
  }
  {  // unknown compression method
    std::string c = z;
    c[cd + 10] = 12;  // bzip2
    CHECK(error_of(c).find("compression method 12") != std::string::npos);
  }
  {  // a deflated member declaring 4 GB: impossible for its compressed size, refused before allocating
    std::string d = make_zip({{"archive/data.pkl", std::string(1000, '\0')}}, true);
    size_t dcd = rd32(d, d.size() - 22 + 16);
    wr32(d, dcd + 24, 0xFFFFFFF0u);
    CHECK(error_of(d).find("impossible") != std::string::npos);
  }
  {  // a storage record missing from the archive
    std::string c = zip_checkpoint(state_dict_pickle({{"w", "FloatStorage", "7", 1, 0, {1}, {1}}}), {});
    CHECK(error_of(c).find("data/7 is missing") != std::string::npos);
  }
}

TEST_CASE("pth hostile: legacy stream and TAR inconsistencies") {
  std::string four = raw_bytes(std::vector<float>{1, 2, 3, 4});
  std::string pkl = state_dict_pickle({{"w", "FloatStorage", "k", 4, 0, {4}, {1}}}, true);
  CHECK(outcome(legacy_checkpoint(pkl, {{"k", four, 4}})) == 0);
  CHECK(error_of(legacy_checkpoint(pkl, {{"k", four, 5}})).find("holds 5 elements") != std::string::npos);
  CHECK(error_of(legacy_checkpoint(pkl, {{"other", four, 4}})).find("has data but no tensor") != std::string::npos);
  CHECK(error_of(legacy_checkpoint(pkl, {})).find("missing") != std::string::npos);
  CHECK(error_of(legacy_checkpoint(pkl, {{"k", four, int64_t{1} << 61}})).find("holds") != std::string::npos);
  // TAR: a header checksum mismatch, and a member size past the end
  std::string t = read_file(kPth + "tiny_tar.pth");
  std::string c = t;
  c[0] = static_cast<char>(c[0] ^ 0x20);
  CHECK(error_of(c).find("checksum") != std::string::npos);
}
