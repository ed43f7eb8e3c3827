#include "prefetch/replay.hpp"

#include <algorithm>
#include <chrono>

#include "base/error.hpp"

namespace volt::prefetch {

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point t) {
  return std::chrono::duration<double>(clock_type::now() - t).count();
}

/// Forwards the executor's calls to the predictor, timing them.
class timed_observer : public routing_observer {
public:
  timed_observer(expert_predictor& predictor, double& seconds)
    : predictor_(predictor), seconds_(seconds) {
  }

  const std::vector<uint32_t>& layer_begins(int64_t layer,
                                            const float* entry_logits,
                                            int64_t n) override {
    auto t0 = clock_type::now();
    const auto& hint = predictor_.layer_begins(layer, entry_logits, n);
    seconds_ += seconds_since(t0);
    return hint;
  }

  void layer_routed(int64_t layer, const int32_t* topk_ids,
                    int64_t n) override {
    auto t0 = clock_type::now();
    predictor_.layer_routed(layer, topk_ids, n);
    seconds_ += seconds_since(t0);
  }

private:
  expert_predictor& predictor_;
  double& seconds_;
};

/// A batch slot: the window it decodes and how far.
struct slot {
  int64_t window = -1;
  int64_t position = 0;
  /// The previous position's experts, [n_layers, k]; empty at the start.
  std::vector<int32_t> previous;
};

std::vector<uint32_t> distinct(std::vector<uint32_t> ids) {
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

} // namespace

int64_t replay_pages(const replay_options& options, int64_t page_size) {
  return options.batch * ((options.window + page_size - 1) / page_size);
}

caf::expected<replay_result> replay(model_executor& exec,
                                    expert_predictor& predictor,
                                    const std::vector<int32_t>& ids,
                                    const replay_options& options) {
  const auto& cfg = exec.config();
  const auto layers = cfg.num_hidden_layers;
  const auto k = cfg.num_experts_per_tok;
  const auto total = static_cast<int64_t>(ids.size());
  const auto windows = (total + options.window - 1) / options.window;
  const auto pages = (options.window + exec.page_size() - 1)
                     / exec.page_size();
  replay_result res;
  for (auto& per_layer : res.scores.by_predictor)
    per_layer.resize(static_cast<size_t>(layers));
  res.previous.resize(static_cast<size_t>(layers));
  if (options.record)
    res.routing.assign(static_cast<size_t>(total * layers * k), 0);
  timed_observer observer{predictor, res.predictor_seconds};
  const bool hooked = options.watch_layers && exec.observe_routing(&observer);
  std::vector<slot> slots(static_cast<size_t>(options.batch));
  int64_t next_window = 0;
  for (;;) {
    step_request req;
    std::vector<size_t> active;
    for (size_t s = 0; s < slots.size(); ++s) {
      auto& sl = slots[s];
      if (sl.window < 0 && next_window < windows) {
        sl = slot{next_window++, 0, {}};
      }
      if (sl.window < 0)
        continue;
      std::vector<int32_t> table(static_cast<size_t>(pages));
      for (int64_t p = 0; p < pages; ++p)
        table[static_cast<size_t>(p)] = static_cast<int32_t>(
          static_cast<int64_t>(s) * pages + p);
      auto row = req.batch.size();
      req.batch.sequences.push_back(step_batch::sequence{
        row, 1, std::move(table), static_cast<uint64_t>(sl.window + 1)});
      req.batch.token_ids.push_back(
        ids[static_cast<size_t>(sl.window * options.window + sl.position)]);
      req.batch.positions.push_back(static_cast<int32_t>(sl.position));
      active.push_back(s);
    }
    if (active.empty())
      break;
    req.record_routing = true;
    const auto n = req.batch.size();
    if (options.trace != nullptr) {
      req.replayed_routing.resize(static_cast<size_t>(layers * n * k));
      for (int64_t l = 0; l < layers; ++l)
        for (int64_t r = 0; r < n; ++r) {
          const auto& sl = slots[active[static_cast<size_t>(r)]];
          std::copy_n(options.trace->experts_of(
                        sl.window * options.window + sl.position, l),
                      k, req.replayed_routing.begin() + (l * n + r) * k);
        }
    }
    auto step_start = clock_type::now();
    auto t0 = clock_type::now();
    predictor.begin_step(req.batch);
    res.predictor_seconds += seconds_since(t0);
    auto progress = exec.start(req);
    if (!progress) {
      predictor.abandon_step();
      exec.observe_routing(nullptr);
      return std::move(progress.error());
    }
    if (progress->needs) {
      exec.abandon();
      predictor.abandon_step();
      exec.observe_routing(nullptr);
      return make_volt_error(volt_errc::internal,
                             "prefetch replay: the executor must compute "
                             "every expert itself");
    }
    const auto& routing = progress->result.routing;
    t0 = clock_type::now();
    if (!hooked)
      for (int64_t l = 0; l < layers; ++l) {
        (void)predictor.layer_begins(l, nullptr, n);
        predictor.layer_routed(l, routing.data() + l * n * k, n);
      }
    const auto& scores = predictor.end_step();
    res.predictor_seconds += seconds_since(t0);
    res.step_seconds += seconds_since(step_start);
    const auto& cache = progress->result.expert_cache;
    res.expert_cache.resize(cache.size());
    for (size_t l = 0; l < cache.size(); ++l)
      res.expert_cache[l] += cache[l];
    for (size_t p = 0; p < predictor_count; ++p)
      for (size_t l = 0; l < static_cast<size_t>(layers); ++l)
        res.scores.by_predictor[p][l] += scores.by_predictor[p][l];
    for (int64_t l = 0; l < layers; ++l) {
      std::vector<uint32_t> guessed;
      std::vector<uint32_t> used;
      for (int64_t r = 0; r < n; ++r) {
        const auto& sl = slots[active[static_cast<size_t>(r)]];
        if (!sl.previous.empty())
          guessed.insert(guessed.end(), sl.previous.begin() + l * k,
                         sl.previous.begin() + (l + 1) * k);
        auto at = routing.begin() + (l * n + r) * k;
        used.insert(used.end(), at, at + k);
      }
      res.previous[static_cast<size_t>(l)].add(distinct(std::move(guessed)),
                                               distinct(std::move(used)));
    }
    for (int64_t r = 0; r < n; ++r) {
      auto& sl = slots[active[static_cast<size_t>(r)]];
      sl.previous.resize(static_cast<size_t>(layers * k));
      const auto token = sl.window * options.window + sl.position;
      for (int64_t l = 0; l < layers; ++l) {
        std::copy_n(routing.begin() + (l * n + r) * k, k,
                    sl.previous.begin() + l * k);
        if (options.record)
          std::copy_n(routing.begin() + (l * n + r) * k, k,
                      res.routing.begin() + (token * layers + l) * k);
      }
      auto length = std::min(options.window,
                             total - sl.window * options.window);
      if (++sl.position == length)
        sl = slot{};
    }
    ++res.steps;
    res.tokens += n;
  }
  exec.observe_routing(nullptr);
  return res;
}

} // namespace volt::prefetch
