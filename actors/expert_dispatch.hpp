#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/expert_pool.hpp"
#include "actors/type_ids.hpp"
#include "caf/expected.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "model/step.hpp"
#include "net/metrics.hpp"

namespace volt {

/// Rows of one request to one expert host, in flight.
struct dispatch_part {
  uint64_t host = 0;
  std::vector<size_t> entries; // indices into the layer's expert_rows
  int64_t rows = 0;
  int attempt = 0;
  /// Hosts that already failed these rows; retries go elsewhere if possible.
  std::vector<uint64_t> failed_hosts;
  /// When the rows were sent; the timer fails the part after the timeout.
  std::chrono::steady_clock::time_point sent;
};

/// Sends one layer's rows to the expert hosts of an engine and gathers their
/// outputs: one message per chosen host (replicas picked by load), a part
/// whose host dies, errs or does not answer in time re-sent to the least
/// loaded replica, up to three tries. Owned by the engine actor; every
/// request it sends is the engine's.
class expert_dispatch {
public:
  /// The layer's outputs in the order of its rows, or why they failed.
  using done_handler = std::function<void(caf::expected<std::vector<float>>)>;

  expert_dispatch(engine_actor::pointer self, expert_pool& pool,
                  int64_t hidden, std::chrono::milliseconds timeout,
                  std::shared_ptr<node_metrics> metrics);

  /// Sends `work` out; `done` runs once with the result (not from inside
  /// this call).
  void start(expert_rows work, done_handler done);

  /// Rows are out.
  bool active() const {
    return layer_ != nullptr;
  }

  /// Token rows at hosts now, by expert (for inspection).
  std::map<uint32_t, int64_t> rows_in_flight() const;

  /// Forgets the layer in flight (its late answers are ignored).
  void cancel();

  /// Re-sends the parts that have waited longer than the timeout.
  void expire_overdue();

  /// A host left the pool: re-sends its parts.
  void host_down(uint64_t host, const std::string& name);

private:
  struct layer {
    expert_rows work;
    std::vector<int64_t> first_row; // [work.expert_ids.size()]
    std::vector<float> outputs; // [work.n_rows(), hidden]
    /// Parts in flight, by an id unique in the engine's life (a late answer
    /// to a part that timed out can never match a later one).
    std::map<uint64_t, dispatch_part> parts;
    done_handler done;
  };

  void send(std::vector<size_t> entries, int attempt,
            std::vector<uint64_t> avoid);
  dispatch_part take(uint64_t part_id);
  void retry(dispatch_part part, const caf::error& cause);
  void on_result(uint64_t part_id, const wire_tensor& out);
  void finish(caf::expected<std::vector<float>> result);
  bool current(uint64_t part_id) const;
  std::string host_name(uint64_t host) const;

  engine_actor::pointer self_;
  expert_pool* pool_;
  int64_t hidden_;
  std::chrono::milliseconds timeout_;
  std::shared_ptr<node_metrics> metrics_;
  std::unique_ptr<layer> layer_;
  uint64_t next_part_ = 1;
};

/// The experts of `hint` (best first) that a host of `hosted` (ascending)
/// hosts, in the hint's order: what its batch carries as stage_next.
std::vector<uint32_t> hosted_hint(const std::vector<uint32_t>& hint,
                                  const std::vector<uint32_t>& hosted);

/// "no live host for experts 4, 5<context>".
caf::error missing_experts_error(const std::vector<uint32_t>& missing,
                                 const std::string& context);

} // namespace volt
