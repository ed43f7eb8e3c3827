#pragma once

// An engine whose executor computes no expert (a router's layout) with expert
// hosts the test picks, and a host that never answers (a frozen node).

#include <memory>
#include <string>
#include <vector>

#include "actors/expert.hpp"
#include "model/cpu_executor.hpp"
#include "tests/engine_harness.hpp"
#include "tests/model/checkpoint_writer.hpp"

namespace volt::test {

/// An expert host that takes batches and never answers: a frozen node.
inline expert_actor::behavior_type black_hole(expert_actor::pointer self,
                                              std::vector<uint32_t> ids) {
  return {
    [self](const expert_batch&) -> caf::result<wire_tensor> {
      return self->make_response_promise<wire_tensor>();
    },
    [ids](hosted_atom) { return expert_hello{ids, {}}; },
  };
}

/// An engine whose executor computes no expert (as a router's), with
/// hand-picked expert hosts.
struct custom_node {
  custom_node(std::vector<expert_host> hosts, engine_options opts)
    : ckpt(open_fixture()), sys(cfg) {
    dense = *dense_weights::load(ckpt);
    all = *expert_weights::load(ckpt, {0, 1, 2, 3, 4, 5, 6, 7});
    auto pages = (ckpt.config().max_position_embeddings + opts.page_size - 1)
                 / opts.page_size;
    auto exec = std::make_shared<cpu_executor>(dense, nullptr, opts.page_size,
                                               pages);
    eng = spawn_engine(sys, exec, std::move(hosts), std::move(opts));
  }

  ~custom_node() {
    caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
  }

  /// Adds a host of `ids` that computes them, named `name`.
  void add_host(const std::vector<uint32_t>& ids, const std::string& name) {
    auto weights = *expert_weights::load(ckpt, ids);
    caf::anon_send(eng, host_atom_v, sys.spawn(expert, weights), ids, name);
  }

  /// Adds a host of `ids` that never answers (joined first, it is picked
  /// first) and returns it.
  expert_actor add_frozen_host(const std::vector<uint32_t>& ids) {
    auto frozen = sys.spawn(black_hole, ids);
    caf::anon_send(eng, host_atom_v, frozen, ids, std::string{"frozen"});
    return frozen;
  }

  caf::expected<generate_result> generate(const generate_request& req) {
    caf::scoped_actor self{sys};
    caf::expected<generate_result> result{caf::error{}};
    self->request(eng, std::chrono::seconds{30}, generate_atom_v, req)
      .receive([&](generate_result& res) { result = std::move(res); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  checkpoint ckpt;
  volt_system_config cfg;
  caf::actor_system sys;
  std::shared_ptr<const dense_weights> dense;
  std::shared_ptr<const expert_weights> all;
  engine_actor eng;
};

inline engine_options quick_options() {
  engine_options opts;
  opts.ready_timeout = std::chrono::milliseconds{300};
  return opts;
}

inline const std::vector<uint32_t> all_ids = {0, 1, 2, 3, 4, 5, 6, 7};

} // namespace volt::test
