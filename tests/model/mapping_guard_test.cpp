#define CAF_SUITE model.mapping_guard

// Checkpoint files changed on disk while they are mapped: truncated or
// rewritten in place (reported, and a read past a truncation ends the process
// with a line naming the file), or replaced by rename (safe).

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>

#include "base/error.hpp"
#include "model/checkpoint.hpp"
#include "model/mapping_guard.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

/// Sets a file's modification time a second later, as a write would.
void touch_later(const std::string& path) {
  namespace fs = std::filesystem;
  fs::last_write_time(path, fs::last_write_time(path) + std::chrono::seconds{1});
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(mapping_guard_tests, test::fixture_copies)

CAF_TEST(files changed under the mapping are reported until unmapped) {
  auto dir = write("mapped", tensors);
  auto file = dir + "/model.safetensors";
  {
    auto ckpt = checkpoint::open(dir);
    CAF_REQUIRE(ckpt);
    CAF_CHECK_EQUAL(describe(check_mapped_files()), "no error");
    // A new file renamed over the old one: the mapping keeps the old file.
    auto next = dir + "/next.tmp";
    std::filesystem::copy_file(file, next);
    std::filesystem::rename(next, file);
    CAF_CHECK_EQUAL(describe(check_mapped_files()), "no error");
  }
  {
    auto ckpt = checkpoint::open(dir);
    CAF_REQUIRE(ckpt);
    // The same size written in place: only the modification time tells.
    touch_later(file);
    auto err = check_mapped_files();
    CAF_CHECK(err == volt_errc::invalid_checkpoint);
    CAF_CHECK_EQUAL(describe(err).rfind(file + ": changed on disk while this "
                                               "node serves from it (it was "
                                               "written in place",
                                        0),
                    0u);
  }
  // Unmapped: nothing to report.
  CAF_CHECK_EQUAL(describe(check_mapped_files()), "no error");
  {
    auto ckpt = checkpoint::open(dir);
    CAF_REQUIRE(ckpt);
    auto size = std::filesystem::file_size(file);
    std::filesystem::resize_file(file, size / 2);
    auto err = check_mapped_files();
    CAF_CHECK(err == volt_errc::invalid_checkpoint);
    CAF_CHECK_NOT_EQUAL(describe(err).find("its size went from "
                                           + std::to_string(size) + " to "
                                           + std::to_string(size / 2)
                                           + " bytes"),
                        std::string::npos);
  }
}

CAF_TEST(reading a truncated mapping exits with a line naming the file) {
  auto dir = write("sigbus", tensors);
  auto file = dir + "/model.safetensors";
  int err_pipe[2];
  CAF_REQUIRE_EQUAL(pipe(err_pipe), 0);
  auto pid = fork();
  CAF_REQUIRE(pid >= 0);
  if (pid == 0) {
    dup2(err_pipe[1], STDERR_FILENO);
    auto ckpt = checkpoint::open(dir);
    if (!ckpt)
      _exit(10);
    auto* last = ckpt->find("lm_head.weight");
    std::filesystem::resize_file(file, 4096);
    volatile uint8_t sum = 0;
    for (size_t i = 0; i < last->nbytes; i += 4096)
      sum = sum + last->data[i];
    _exit(11); // reading past the end did not fault
  }
  close(err_pipe[1]);
  std::string err;
  char buf[1024];
  for (ssize_t n; (n = read(err_pipe[0], buf, sizeof(buf))) > 0;)
    err.append(buf, static_cast<size_t>(n));
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  CAF_REQUIRE(WIFEXITED(status));
  CAF_CHECK_EQUAL(WEXITSTATUS(status), exit_checkpoint_changed);
  CAF_CHECK_EQUAL(err, "volt-node: " + file
                         + ": the file was truncated while this process had "
                           "it mapped (SIGBUS reading its weights); replace "
                           "checkpoint files by renaming a complete new file "
                           "over the old one, never by writing into it; "
                           "exiting\n");
}

CAF_TEST_FIXTURE_SCOPE_END()
