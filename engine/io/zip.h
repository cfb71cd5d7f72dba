// zip.h — a reader for the ZIP archives torch.save writes (torch >= 1.6): classic and ZIP64 end
// records, central-directory entries (ZIP64 extra fields included), stored and deflated members.
//
// Rules: sizes, offsets and CRCs come from the central directory (torch's local headers carry
// zeros and data descriptors); every offset and size is checked against the archive before use;
// a deflated member's declared size must be within deflate's maximal ratio of its compressed size,
// so a hostile archive cannot request a huge allocation. CRC-32 is verified on every read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/io/mapped_file.h"

namespace dfq {

struct ZipEntry {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint32_t crc = 0;
  uint64_t comp_size = 0, size = 0, local_offset = 0;
};

bool is_zip(const uint8_t* p, size_t n);  // "PK\3\4" at offset 0, as torch checks

class ZipReader {
 public:
  ZipReader(Bytes archive, std::string label);  // parses the central directory; throws if malformed
  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;
  // The member's bytes: a view into the archive (stored) or a fresh buffer (deflated). CRC checked.
  Bytes read(const ZipEntry& e) const;

 private:
  Bytes z_;
  std::string label_;
  std::vector<ZipEntry> entries_;
  [[noreturn]] void fail(const std::string& why) const;
};

}  // namespace dfq
