#pragma once

#include <memory>
#include <vector>

#include "model/executor.hpp"
#include "model/forward.hpp"
#include "model/kv_cache.hpp"
#include "model/mixtral.hpp"

namespace volt {

/// The reference executor: float32 on the host CPU, the model's own weights
/// (zero-copy from float32 checkpoints), attention and logits split over the
/// compute threads (gpu/cpu/parallel.hpp), local experts computed in
/// parallel. Every row's result is independent of the batch and the split, so
/// any batch gives the bits of the request alone.
class cpu_executor : public model_executor {
public:
  /// `experts` may be null (a router: every expert lives elsewhere). The K/V
  /// storage of `num_pages` pages of `page_size` tokens is allocated here.
  cpu_executor(std::shared_ptr<const dense_weights> dense,
               std::shared_ptr<const expert_weights> experts,
               int64_t page_size, int64_t num_pages);

  const model_config& config() const override {
    return dense_->config;
  }

  std::string where() const override {
    return "cpu";
  }

  const std::vector<uint32_t>& local_experts() const override {
    return local_;
  }

  int64_t num_pages() const override {
    return cache_.num_pages();
  }

  int64_t page_size() const override {
    return cache_.page_size();
  }

  int64_t max_step_rows() const override;

  bool observe_routing(routing_observer* obs) override {
    observer_ = obs;
    return true;
  }

  caf::expected<step_progress> start(step_request req) override;

  caf::expected<step_progress> resume(std::vector<float> outputs) override;

  void abandon() override {
    step_.reset();
  }

private:
  /// The step in progress.
  struct step_state {
    step_request req;
    std::vector<float> hidden; // [n, hidden]
    int64_t layer = 0;
    // The current layer's MoE, kept while remote experts compute.
    std::vector<float> x; // [n, hidden] MoE input
    std::vector<float> topk_weights; // [n, k]
    dispatch_plan plan;
    std::vector<int64_t> first_row; // [plan entries]
    std::vector<float> expert_out; // [n * k, hidden], grouped
    std::vector<size_t> remote_entries; // plan entries computed elsewhere
    std::vector<int32_t> routing; // [n_layers, n, k] when recorded
    /// Experts the step may route to ([n_experts]; empty: all) and the rows
    /// that lost one ([n] while some expert is masked).
    std::vector<uint8_t> available;
    std::vector<uint8_t> degraded_rows;
  };

  /// Runs layers from st.layer on until the step is done or waits for
  /// remote experts.
  caf::expected<step_progress> run_layers();

  /// Routes the layer's rows, computes the local experts, and returns the
  /// rows for remote ones (none: the layer can be combined).
  expert_rows begin_moe(int64_t layer);

  /// Adds the weighted expert outputs to the residual.
  void finish_moe();

  step_result finish_step();

  std::shared_ptr<const dense_weights> dense_;
  std::shared_ptr<const expert_weights> experts_;
  std::vector<uint32_t> local_;
  std::vector<bool> is_local_;
  kv_cache cache_;
  std::unique_ptr<step_state> step_;
  routing_observer* observer_ = nullptr;
};

} // namespace volt
