#pragma once

// The model executor: runs whole engine steps of a Mixtral model. Two
// implementations: the CPU executor (float32, the reference that CI runs;
// model/cpu_executor.hpp) and the CUDA executor (bf16 weights, K/V and the
// step on one GPU; model/cuda_executor.hpp). An executor owns its weights,
// the K/V page storage and whatever device it runs on; the engine owns the
// paging policy (which page belongs to whom) and hands it page ids.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "caf/expected.hpp"
#include "model/model_config.hpp"
#include "model/routing_observer.hpp"
#include "model/step.hpp"

namespace volt {

/// Where a step stands after `start` or `resume`.
struct step_progress {
  /// Set while the step waits for experts on other nodes: compute these rows
  /// and `resume` with their outputs.
  std::optional<expert_rows> needs;
  /// The step's outputs once `needs` is empty.
  step_result result;
};

class model_executor {
public:
  virtual ~model_executor() = default;

  virtual const model_config& config() const = 0;

  /// "cpu" or "cuda:N (device name)", for logs.
  virtual std::string where() const = 0;

  /// Experts of every layer computed by the executor itself, ascending; rows
  /// for the others leave the step through `step_progress::needs`.
  virtual const std::vector<uint32_t>& local_experts() const = 0;

  /// Pages of the K/V storage and tokens per page.
  virtual int64_t num_pages() const = 0;
  virtual int64_t page_size() const = 0;

  /// Most rows one step may hold (prefill chunks and decodes together).
  virtual int64_t max_step_rows() const = 0;

  /// Steps wait on a device: the actor that drives the executor needs a
  /// thread of its own rather than one of CAF's scheduler threads.
  virtual bool blocks_on_device() const {
    return false;
  }

  /// Reports the routing of every layer of the following steps to `obs`
  /// (null: to nobody) as it happens, with the cross-layer prediction's
  /// logits. False when the executor cannot: the engine then asks steps to
  /// record their routing and predicts from the finished step alone.
  virtual bool observe_routing(routing_observer* obs) {
    (void)obs;
    return false;
  }

  /// Starts a step: copies pages, then runs the layers until the step is
  /// done or needs rows from other nodes' experts. Errors name what failed;
  /// after one the step is over.
  virtual caf::expected<step_progress> start(step_request req) = 0;

  /// Continues the step with the outputs of the rows `needs` asked for.
  /// - outputs (in): [needs->n_rows(), hidden] f32, in the order of the rows
  virtual caf::expected<step_progress> resume(std::vector<float> outputs) = 0;

  /// Drops the step in progress (its remote rows failed).
  virtual void abandon() = 0;
};

} // namespace volt
