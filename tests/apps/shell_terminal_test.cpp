#define CAF_SUITE apps.shell_terminal

// `volt-node shell` at a terminal: a pseudo-terminal stands in for the
// person, against a real standalone node.

#include <fstream>
#include <sstream>

#include "tests/cluster.hpp"
#include "tests/pty_process.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

constexpr auto patience = std::chrono::seconds{30};

const std::string prompt = "volt> ";
const std::string up_arrow = "\x1b[A";

/// The line of `text` (a terminal's output) that contains `fragment`, from
/// there to its end.
std::string line_with(const std::string& text, const std::string& fragment) {
  auto at = text.find(fragment);
  if (at == std::string::npos)
    return {};
  auto end = text.find_first_of("\r\n", at);
  return text.substr(at, end == std::string::npos ? end : end - at);
}

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

} // namespace

CAF_TEST(the prompt runs commands recalls history and names unknown ones) {
  temp_dir dir;
  auto port = free_port();
  node_process node{write_node_toml(dir, {"solo", "standalone", port, 0, ""})};
  CAF_REQUIRE(node.wait_ready());
  std::vector<std::string> argv{volt_node_binary(), "shell",
                                "127.0.0.1:" + std::to_string(port)};
  std::vector<std::string> env{"TERM=xterm", "XDG_STATE_HOME=" + dir.path()};
  for (auto& x : client_tls_env())
    env.push_back(x);
  {
    pty_process shell{argv, env};
    CAF_REQUIRE(shell.wait_for(prompt, 0, patience));
    auto mark = shell.output().size();
    shell.type("queue\r");
    CAF_REQUIRE(shell.wait_for("queued:", mark, patience));
    CAF_REQUIRE(shell.wait_for(prompt, shell.output().find("queued:", mark),
                               patience));
    // The up arrow brings "queue" back; Enter runs it again.
    mark = shell.output().size();
    shell.type(up_arrow);
    CAF_REQUIRE(shell.wait_for("queue", mark, patience));
    shell.type("\r");
    CAF_REQUIRE(shell.wait_for("queued:", mark, patience));
    CAF_REQUIRE(shell.wait_for(prompt, shell.output().find("queued:", mark),
                               patience));
    mark = shell.output().size();
    shell.type("nodez\r");
    CAF_REQUIRE(shell.wait_for("'help' lists the commands", mark, patience));
    auto error = line_with(shell.output().substr(mark), "error:");
    CAF_CHECK_EQUAL(error, "error: unknown command 'nodez' (did you mean "
                           "'nodes'?); 'help' lists the commands");
    mark = shell.output().size();
    shell.type("help\r");
    CAF_CHECK(shell.wait_for("spawn EXPERTS on NODE", mark, patience));
    shell.type("quit\r");
    CAF_CHECK_EQUAL(shell.wait(patience), 0);
  }
  // The history outlives the shell: the next one recalls "quit" with the up
  // arrow, and Enter runs it.
  auto history = read_file(dir.file("volt_shell_history"));
  CAF_CHECK_NOT_EQUAL(history.find("queue"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(history.find("nodez"), std::string::npos);
  {
    pty_process shell{argv, env};
    CAF_REQUIRE(shell.wait_for(prompt, 0, patience));
    shell.type(up_arrow + "\r");
    CAF_CHECK_EQUAL(shell.wait(patience), 0);
  }
  CAF_CHECK_EQUAL(node.stop(), 0);
}
