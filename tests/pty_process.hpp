#pragma once

// Runs a program on a pseudo-terminal, as a person at a terminal would: for
// tests of interactive programs (prompts, line editing, history). Every wait
// is bounded; a child that outlives its bound is killed.

#include <poll.h>
#include <pty.h>

#include "tests/process.hpp"

namespace volt::test {

class pty_process {
public:
  /// Starts `argv` on a fresh terminal of `columns` columns, with `env`
  /// ("NAME=value" each) added to this process's environment.
  explicit pty_process(const std::vector<std::string>& argv,
                       const std::vector<std::string>& env = {},
                       unsigned short columns = 240) {
    winsize size{};
    size.ws_row = 50;
    size.ws_col = columns;
    auto parent = getpid();
    pid_ = forkpty(&master_, nullptr, nullptr, &size);
    if (pid_ == 0) {
      die_with_parent(parent);
      exec_child(argv, env);
    }
  }

  pty_process(const pty_process&) = delete;
  pty_process& operator=(const pty_process&) = delete;

  ~pty_process() {
    if (pid_ > 0 && exit_code_ == not_exited) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0)
      close(master_);
  }

  /// Types `keys` (a command is "text\r"; the up arrow is "\x1b[A").
  void type(const std::string& keys) {
    (void)!write(master_, keys.data(), keys.size());
  }

  /// Reads until `text` shows up in the output after position `from` or
  /// `timeout` passes; true if it did.
  bool wait_for(const std::string& text, size_t from,
                std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (out_.find(text, from) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || !pump(left))
        return out_.find(text, from) != std::string::npos;
    }
    return true;
  }

  /// Waits for the exit (killing the child after `timeout`); returns its
  /// exit code, 128 + signal number, or -1 when it had to be killed.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (exit_code_ == not_exited) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        exit_code_ = -1;
        break;
      }
      if (!pump(std::chrono::milliseconds{50}))
        usleep(10000);
    }
    while (pump(std::chrono::milliseconds{0})) {
    }
    return exit_code_;
  }

  /// Everything the program wrote to its terminal (escape sequences
  /// included).
  const std::string& output() const {
    return out_;
  }

private:
  static constexpr int not_exited = -1000;

  /// Reads what comes within `timeout`; false when nothing did.
  bool pump(std::chrono::milliseconds timeout) {
    if (master_ < 0)
      return false;
    pollfd p{master_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout.count())) <= 0)
      return false;
    char buf[4096];
    auto n = read(master_, buf, sizeof(buf));
    if (n <= 0) {
      // The terminal's other side closed (EIO): the program is gone.
      close(master_);
      master_ = -1;
      return false;
    }
    out_.append(buf, static_cast<size_t>(n));
    return true;
  }

  pid_t pid_ = -1;
  int master_ = -1;
  int exit_code_ = not_exited;
  std::string out_;
};

} // namespace volt::test
