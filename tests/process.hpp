#pragma once

// Runs volt-node (or any program) as a child process for tests of what a user
// sees: exit codes, stdout and stderr. Every wait is bounded; a child that
// outlives its bound is killed.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace volt::test {

/// The path of the volt-node binary under test.
inline std::string volt_node_binary() {
  return VOLT_NODE_BINARY;
}

/// In a forked child: dies with the test. A test that crashes or that CAF's
/// watchdog aborts runs no destructor: the kernel then kills its children
/// instead of leaving nodes and servers behind. The signal comes when the
/// thread that forked ends, so a child must not outlive the thread that
/// started it.
inline void die_with_parent(pid_t parent) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(127); // the test died before prctl
}

/// In a forked child: runs `argv` with `extra_env` ("NAME=value" each) added
/// to the environment; never returns.
[[noreturn]] inline void exec_child(const std::vector<std::string>& argv,
                                    const std::vector<std::string>& extra_env) {
  for (const auto& kv : extra_env)
    putenv(const_cast<char*>(kv.c_str()));
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

/// A started child process with its stdout and stderr captured.
class child_process {
public:
  child_process(const std::vector<std::string>& argv,
                const std::vector<std::string>& extra_env = {}) {
    int out_pipe[2];
    int err_pipe[2];
    if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0)
      return;
    auto parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      die_with_parent(parent);
      dup2(out_pipe[1], STDOUT_FILENO);
      dup2(err_pipe[1], STDERR_FILENO);
      close(out_pipe[0]);
      close(err_pipe[0]);
      exec_child(argv, extra_env);
    }
    close(out_pipe[1]);
    close(err_pipe[1]);
    out_fd_ = out_pipe[0];
    err_fd_ = err_pipe[0];
  }

  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  ~child_process() {
    if (pid_ > 0 && exit_code_ == not_exited) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0)
      close(out_fd_);
    if (err_fd_ >= 0)
      close(err_fd_);
  }

  /// Reads output until `text` shows up in stderr or `timeout` passes; true if
  /// it did.
  bool wait_for_stderr(const std::string& text,
                       std::chrono::milliseconds timeout) {
    return wait_for(err_, text, timeout);
  }

  /// Reads output until `text` shows up in stdout or `timeout` passes.
  bool wait_for_stdout(const std::string& text,
                       std::chrono::milliseconds timeout) {
    return wait_for(out_, text, timeout);
  }

  /// Waits for the exit (killing the child after `timeout`); returns its exit
  /// code, or 128 + signal number, or -1 when it had to be killed.
  int wait(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (exit_code_ == not_exited) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        print_stacks();
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
        exit_code_ = -1;
        break;
      }
      if (!pump(std::min(left, std::chrono::milliseconds{50}))) {
        int status = 0;
        if (waitpid(pid_, &status, WNOHANG) == pid_)
          exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status)
                                         : 128 + WTERMSIG(status);
        else if (out_fd_ < 0 && err_fd_ < 0)
          usleep(10000); // pipes closed, process still exiting
      }
    }
    while (pump(std::chrono::milliseconds{0})) {
    }
    return exit_code_;
  }

  void signal(int sig) {
    kill(pid_, sig);
  }

  /// Prints every thread's stack of the process on stderr, where gdb is
  /// installed: what a process that outlived its bound was waiting for.
  void print_stacks() const {
    if (access("/usr/bin/gdb", X_OK) != 0)
      return;
    fprintf(stderr, "process %d outlived its bound; its threads:\n",
            static_cast<int>(pid_));
    auto cmd = "/usr/bin/gdb -batch -nx -p " + std::to_string(pid_)
               + " -ex 'thread apply all bt 30' 2>/dev/null"
                 " | grep -E '^(Thread|#)' >&2";
    if (std::system(cmd.c_str()) != 0)
      fprintf(stderr, "(gdb could not attach)\n");
  }

  pid_t pid() const {
    return pid_;
  }

  const std::string& out() const {
    return out_;
  }

  const std::string& err() const {
    return err_;
  }

private:
  static constexpr int not_exited = -1000;

  bool wait_for(const std::string& stream, const std::string& text,
                std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (stream.find(text) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0)
        return false;
      if (!pump(std::min(left, std::chrono::milliseconds{100})) && out_fd_ < 0
          && err_fd_ < 0)
        return stream.find(text) != std::string::npos; // the child is gone
    }
    return true;
  }

  /// Reads what is available within `timeout`; false when both pipes are closed
  /// or idle.
  bool pump(std::chrono::milliseconds timeout) {
    pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
    if (out_fd_ < 0 && err_fd_ < 0)
      return false;
    if (poll(fds, 2, static_cast<int>(timeout.count())) <= 0)
      return false;
    bool any = false;
    char buf[4096];
    for (auto [fd, target] : {std::pair<int*, std::string*>{&out_fd_, &out_},
                              std::pair<int*, std::string*>{&err_fd_, &err_}}) {
      auto& p = fds[fd == &out_fd_ ? 0 : 1];
      if (*fd < 0 || (p.revents & (POLLIN | POLLHUP)) == 0)
        continue;
      auto n = read(*fd, buf, sizeof(buf));
      if (n > 0) {
        target->append(buf, static_cast<size_t>(n));
        any = true;
      } else {
        close(*fd);
        *fd = -1;
      }
    }
    return any;
  }

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  int exit_code_ = not_exited;
  std::string out_;
  std::string err_;
};

/// Runs `argv` to completion (bounded by `timeout`) and returns the finished
/// process.
struct run_result {
  int exit_code;
  std::string out;
  std::string err;
};

inline run_result
run_process(const std::vector<std::string>& argv,
            std::chrono::milliseconds timeout = std::chrono::seconds{60},
            const std::vector<std::string>& extra_env = {}) {
  child_process child{argv, extra_env};
  auto code = child.wait(timeout);
  return {code, child.out(), child.err()};
}

} // namespace volt::test
