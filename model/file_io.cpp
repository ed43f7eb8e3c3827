#include "model/file_io.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.hpp"
#include "model/mapping_guard.hpp"

namespace volt {

namespace {

caf::error file_error(const std::string& path, const std::string& what) {
  return make_volt_error(volt_errc::invalid_checkpoint, path + ": " + what);
}

caf::error errno_error(const std::string& path, const char* action, int err) {
  return file_error(path, std::string{action} + ": " + std::strerror(err));
}

/// Closes a file descriptor on scope exit.
struct fd_guard {
  int fd;
  ~fd_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

/// Opens `path` read-only and checks that it is a regular file; returns its
/// size through `size`.
caf::expected<int> open_regular(const std::string& path, size_t& size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    auto err = errno;
    if (err == ENOENT)
      return file_error(path, "file does not exist");
    return errno_error(path, "cannot open", err);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    auto err = errno;
    ::close(fd);
    return errno_error(path, "cannot stat", err);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return file_error(path, "is a directory, not a file");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return file_error(path, "is not a regular file");
  }
  size = static_cast<size_t>(st.st_size);
  return fd;
}

} // namespace

std::string join_path(const std::string& dir, const std::string& name) {
  if (dir.empty())
    return name;
  if (dir.back() == '/')
    return dir + name;
  return dir + "/" + name;
}

caf::expected<std::string> read_text_file(const std::string& path) {
  size_t size = 0;
  auto fd = open_regular(path, size);
  if (!fd)
    return fd.error();
  fd_guard guard{*fd};
  std::string result;
  result.resize(size);
  size_t done = 0;
  // Read until EOF rather than trusting st_size: the file may change while we
  // read it.
  for (;;) {
    if (done == result.size())
      result.resize(result.size() + 4096);
    auto n = ::read(*fd, &result[done], result.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return errno_error(path, "cannot read", errno);
    }
    if (n == 0)
      break;
    done += static_cast<size_t>(n);
  }
  result.resize(done);
  return result;
}

caf::error write_file_atomically(const std::string& path,
                                 const std::vector<byte_span>& pieces) {
  auto tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno_error(path, "cannot create", errno);
  for (auto& piece : pieces) {
    auto bytes = static_cast<const char*>(piece.data);
    size_t done = 0;
    while (done < piece.size) {
      auto n = ::write(fd, bytes + done, piece.size - done);
      if (n < 0) {
        if (errno == EINTR)
          continue;
        auto err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return errno_error(path, "cannot write", err);
      }
      done += static_cast<size_t>(n);
    }
  }
  if (::close(fd) != 0) {
    auto err = errno;
    ::unlink(tmp.c_str());
    return errno_error(path, "cannot write", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    auto err = errno;
    ::unlink(tmp.c_str());
    return errno_error(path, "cannot rename temporary file", err);
  }
  return caf::none;
}

caf::expected<std::shared_ptr<mapped_file>>
mapped_file::open(const std::string& path) {
  size_t size = 0;
  auto fd = open_regular(path, size);
  if (!fd)
    return fd.error();
  fd_guard guard{*fd};
  if (size == 0)
    return file_error(path, "file is empty");
  auto ptr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, *fd, 0);
  if (ptr == MAP_FAILED)
    return errno_error(path, "cannot mmap", errno);
  // The descriptor stays open: it tells whether this very file (not one
  // renamed over its path since) changed under the mapping.
  guard_mapping(ptr, size, *fd, path);
  auto result = std::shared_ptr<mapped_file>{
    new mapped_file(path, static_cast<const uint8_t*>(ptr), size, *fd)};
  guard.fd = -1;
  return result;
}

mapped_file::~mapped_file() {
  unguard_mapping(data_);
  ::munmap(const_cast<uint8_t*>(data_), size_);
  ::close(fd_);
}

} // namespace volt
