#define CAF_SUITE net.junk_messages

// A peer that passes the handshakes (mutual TLS with a certificate of the
// cluster's CA, then BASP) and then sends a node's engine messages it does not
// handle: each request is answered with unexpected_message, and the node logs
// a few lines a second, not one per message (CAF's own handler printed every
// one to stderr).

#include "caf/io/middleman.hpp"
#include "caf/scoped_actor.hpp"
#include "net/actor_system_setup.hpp"
#include "net/tls_files.hpp"
#include "tests/cluster.hpp"
#include "tests/engine_harness.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(junk from a peer is refused and logged in brief) {
  temp_dir dir;
  auto port = free_port();
  node_process node{write_node_toml(dir, {"junk", "standalone", port, 0, ""})};
  CAF_REQUIRE(node.wait_ready());
  const auto& certs = test_certs::get();
  auto tls
    = tls_files::load({certs.file("client.pem"), certs.file("client-key.pem"),
                       certs.file("ca.pem")});
  CAF_REQUIRE(tls);
  caf::actor_system_config cfg;
  configure_actor_system(cfg, std::chrono::milliseconds{0}, &*tls);
  caf::actor_system sys{cfg};
  auto engine = remote_link<engine_actor>(sys, "127.0.0.1", port);
  CAF_REQUIRE(engine);
  auto untyped = caf::actor_cast<caf::actor>(*engine);
  caf::scoped_actor self{sys};
  int refused = 0;
  for (int i = 0; i < 200; ++i)
    self->request(untyped, std::chrono::seconds{10}, std::string{"junk"}, i)
      .receive([](const std::string&) {},
               [&](caf::error& err) {
                 refused += err == caf::sec::unexpected_message ? 1 : 0;
               });
  CAF_CHECK_EQUAL(refused, 200);
  node.read_log(std::chrono::milliseconds{300});
  CAF_CHECK_EQUAL(node.log().find("*** unexpected message"), std::string::npos);
  auto logged = count_lines(node.log(), "dropped a message it does not handle");
  CAF_CHECK_GREATER_OR_EQUAL(logged, 1u);
  CAF_CHECK_LESS(logged, 30u);
  // The node still serves.
  auto r = run_generate({"--connect", "127.0.0.1:" + std::to_string(port)},
                        "203", 2);
  CAF_CHECK_EQUAL(r.exit_code, 0);
  CAF_CHECK_EQUAL(node.stop(), 0);
}
