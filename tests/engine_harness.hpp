#pragma once

// Runs generations on a standalone node spawned in the test process, with real
// actors on CAF's threaded scheduler (the deterministic test coordinator cannot
// follow the engine's chains of requests across actors).

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "actors/standalone.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/scoped_actor.hpp"
#include "net/actor_system_setup.hpp"
#include "tests/test_dsl.hpp"
#include "tests/test_format.hpp"

namespace volt::test {

/// voltinfer_requests_total{outcome} of `metrics`.
inline double requests_total(const node_metrics& metrics,
                             const std::string& outcome) {
  for (const auto& family : metrics.registry()->Collect())
    if (family.name == "voltinfer_requests_total")
      for (const auto& metric : family.metric)
        for (const auto& label : metric.label)
          if (label.name == "outcome" && label.value == outcome)
            return metric.counter.value;
  return 0;
}

/// An actor system configured as volt-node configures it.
struct volt_system_config : caf::actor_system_config {
  volt_system_config() {
    configure_actor_system(*this);
  }
};

/// A standalone node in this process and a client actor to talk to it.
class engine_harness {
public:
  /// Spawns the node's engine for `ckpt` on the CPU executor.
  explicit engine_harness(const checkpoint& ckpt, engine_options opts = {})
    : engine_harness(ckpt, standalone_options{opts}) {}

  /// Spawns the node's engine for `ckpt` placed as `options` say.
  engine_harness(const checkpoint& ckpt, const standalone_options& options)
    : sys_(cfg_) {
    auto handle = spawn_standalone(sys_, ckpt, options);
    if (handle)
      engine_ = *handle;
    else
      spawn_error_ = handle.error();
  }

  ~engine_harness() {
    caf::anon_send_exit(engine_, caf::exit_reason::user_shutdown);
  }

  const caf::error& spawn_error() const {
    return spawn_error_;
  }

  engine_actor engine() const {
    return engine_;
  }

  caf::actor_system& system() {
    return sys_;
  }

  /// Sends one request and waits for its answer.
  caf::expected<generate_result> generate(const generate_request& req) {
    caf::scoped_actor self{sys_};
    caf::expected<generate_result> result{caf::error{}};
    self->request(engine_, std::chrono::seconds{60}, generate_atom_v, req)
      .receive([&](generate_result& res) { result = std::move(res); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  /// Sends every request before receiving any answer (so that they are all
  /// in the engine's mailbox together), then returns the answers in order.
  std::vector<caf::expected<generate_result>>
  generate_all(const std::vector<generate_request>& reqs) {
    caf::scoped_actor self{sys_};
    std::vector<decltype(self->request(engine_, caf::infinite, generate_atom_v,
                                       generate_request{}))>
      pending;
    for (const auto& req : reqs)
      pending.push_back(
        self->request(engine_, std::chrono::seconds{60}, generate_atom_v, req));
    std::vector<caf::expected<generate_result>> out;
    for (auto& p : pending)
      p.receive([&](generate_result& res) { out.emplace_back(std::move(res)); },
                [&](caf::error& err) { out.emplace_back(std::move(err)); });
    return out;
  }

private:
  volt_system_config cfg_;
  caf::actor_system sys_;
  engine_actor engine_;
  caf::error spawn_error_;
};

/// The tiny fixture, opened (the test fails if it cannot be).
inline checkpoint open_fixture() {
  auto ckpt
    = checkpoint::open(std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-a");
  if (!ckpt)
    CAF_FAIL(describe(ckpt.error()));
  return std::move(*ckpt);
}

/// A request for `new_tokens` tokens after `prompt`; EOS does not stop it.
inline generate_request request_for(std::vector<int32_t> prompt,
                                    uint32_t new_tokens) {
  generate_request req;
  req.prompt = std::move(prompt);
  req.max_new_tokens = new_tokens;
  req.ignore_eos = true;
  return req;
}

/// ‖a − b‖ / ‖b‖.
template <class A, class B>
double relative_error(const A& a, const B& b) {
  double num = 0;
  double den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += d * d;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(num / den);
}

/// The floats of an f32 wire tensor.
inline std::vector<float> floats_of(const wire_tensor& t) {
  std::vector<float> out;
  unpack_f32(t, out);
  return out;
}

/// The int32 values of an i32 wire tensor.
inline std::vector<int32_t> ints_of(const wire_tensor& t) {
  std::vector<int32_t> out;
  unpack_i32(t, out);
  return out;
}

} // namespace volt::test
