// mapped_file.cpp — see mapped_file.h.
#include "engine/io/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace dfq {

Bytes map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("dfq: cannot open " + path + ": " + std::strerror(errno));
  struct stat st{};
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw std::runtime_error("dfq: cannot stat " + path + ": " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw std::runtime_error("dfq: cannot open " + path + ": not a regular file");
  }
  Bytes b;
  b.size = static_cast<size_t>(st.st_size);
  if (b.size == 0) {
    ::close(fd);
    return b;
  }
  void* p = mmap(nullptr, b.size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error("dfq: cannot map " + path + ": " + std::strerror(e));
  b.data = static_cast<const uint8_t*>(p);
  size_t n = b.size;
  b.owner = std::shared_ptr<void>(p, [n](void* q) { munmap(q, n); });
  return b;
}

}  // namespace dfq
