#define CAF_SUITE gpu.cuda_expert

// The CUDA expert actor against the CPU expert actor (bf16) and the int8 CPU
// twin (int8) on the tiny checkpoint, through a real actor system (the actor
// is detached, so the deterministic test scheduler cannot run it). Without a
// GPU every case prints VOLT_GPU_SKIPPED; without a CUDA build the spawn
// error is checked first.

#include "actors/cuda_expert.hpp"

#include "actors/expert.hpp"
#include "base/error.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/scoped_actor.hpp"
#include "gpu/cpu/quant.hpp"
#include "model/expert_slot_cache.hpp"
#include "net/metrics.hpp"
#include "tests/gpu/gpu_test_util.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

#include <optional>
#include <sstream>

#ifdef VOLT_HAVE_CUDA
#  include <cuda_runtime_api.h>
#endif

using namespace volt;
using namespace volt::test;

namespace {

struct config : caf::actor_system_config {
  config() {
    add_message_types<caf::id_block::volt>();
  }
};

/// A CUDA expert actor's options on device 0.
cuda_expert_options
on_gpu(weight_quantization quantization = weight_quantization::none,
       int64_t slots = 0,
       expert_miss_mode misses = expert_miss_mode::automatic) {
  cuda_expert_options o;
  o.quantization = quantization;
  o.slots = slots;
  o.misses = misses;
  o.slots_origin = "node.toml: [worker] gpu_expert_slots =";
  return o;
}

cuda_expert_options on_device(int device) {
  auto o = on_gpu();
  o.device = device;
  return o;
}

/// The sum of a counter's series in a /metrics text.
double metric_sum(const std::string& text, const std::string& name) {
  double sum = 0;
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(name + "{", 0) == 0)
      sum += std::stod(line.substr(line.rfind(' ') + 1));
  return sum;
}

struct fixture {
  fixture() : sys(cfg) {
    auto opened = checkpoint::open(tiny_mixtral_dir());
    if (!opened)
      CAF_FAIL(describe(opened.error()));
    ckpt = std::move(*opened);
    experts = *expert_weights::load(*ckpt, ids);
  }

  bool gpu_available() {
#ifdef VOLT_HAVE_CUDA
    int count = 0;
    auto status = cudaGetDeviceCount(&count);
    if (status == cudaSuccess && count > 0)
      return true;
    report_gpu_skip(status != cudaSuccess ? cudaGetErrorString(status)
                                          : "no CUDA device");
#else
    report_gpu_skip("volt was built without CUDA");
#endif
    return false;
  }

  template <class T, class... Ts>
  caf::expected<T> ask(const expert_actor& dest, Ts&&... xs) {
    caf::expected<T> result{caf::error{}};
    caf::scoped_actor self{sys};
    self->request(dest, std::chrono::seconds(60), std::forward<Ts>(xs)...)
      .receive([&](T& x) { result = std::move(x); },
               [&](caf::error& err) { result = std::move(err); });
    return result;
  }

  config cfg;
  caf::actor_system sys;
  std::optional<checkpoint> ckpt;
  /// What the GPU actors host; `experts` are their float32 CPU twins.
  const std::vector<uint32_t> ids{1, 4, 6};
  std::shared_ptr<const expert_weights> experts;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(cuda_expert_tests, fixture)

CAF_TEST(without CUDA the spawn fails with a clear error) {
#ifndef VOLT_HAVE_CUDA
  auto no_cuda = spawn_cuda_expert(sys, *ckpt, ids, on_gpu());
  CAF_REQUIRE(!no_cuda);
  CAF_CHECK_EQUAL(describe(no_cuda.error()),
                  "volt-node was built without CUDA; [worker] device = cuda:0 "
                  "needs a CUDA build");
#endif
  if (!gpu_available())
    return;
  auto handle = spawn_cuda_expert(sys, *ckpt, ids, on_device(999));
  CAF_REQUIRE(!handle);
  CAF_CHECK_EQUAL(
    describe(handle.error()).rfind("[worker] device = cuda:999", 0), 0u);
}

CAF_TEST(the cuda expert actor matches the cpu expert actor) {
  if (!gpu_available())
    return;
  auto gpu = spawn_cuda_expert(sys, *ckpt, ids, on_gpu());
  CAF_REQUIRE(gpu);
  auto cpu = sys.spawn(expert, experts);
  auto hello = ask<expert_hello>(*gpu, hosted_atom_v);
  CAF_REQUIRE(hello);
  CAF_CHECK_EQUAL(hello->experts, std::vector<uint32_t>({1, 4, 6}));
  CAF_CHECK_EQUAL(hello->checkpoint, experts->hosting().checkpoint_fingerprint());
  std::mt19937 gen{5};
  const int64_t hidden = experts->config().hidden_size;
  // The last big batch (over 1 MiB of rows) is copied to the device group by
  // group; the others at once.
  for (auto counts : {std::vector<uint32_t>{1, 0, 0},
                      {3, 1, 2},
                      {31, 7, 0},
                      {257, 40, 3},
                      {0, 0, 0},
                      {2100, 1500, 700}})
    for (uint32_t layer = 0; layer < 2; ++layer) {
      int64_t n = counts[0] + counts[1] + counts[2];
      auto x = uniform_floats(static_cast<size_t>(n * hidden), gen);
      expert_batch batch{
        layer, {6, 1, 4}, counts, pack_f32(x.data(), {n, hidden}), {}};
      auto want = ask<wire_tensor>(cpu, batch);
      auto got = ask<wire_tensor>(*gpu, batch);
      CAF_REQUIRE(want);
      CAF_REQUIRE(got);
      CAF_REQUIRE(!check_wire_tensor(*got, dtype::f32, {n, hidden}, "out"));
      std::vector<float> g;
      std::vector<float> w;
      unpack_f32(*got, g);
      unpack_f32(*want, w);
      if (n > 0)
        CAF_CHECK_LESS(rel_error(g, w), 1e-2);
    }
  // Malformed batches are answered with an error, never a crash.
  auto x = uniform_floats(static_cast<size_t>(2 * hidden), gen);
  auto not_hosted = ask<wire_tensor>(
    *gpu, expert_batch{0, {2}, {2}, pack_f32(x.data(), {2, hidden}), {}});
  CAF_CHECK(!not_hosted);
  auto bad_shape = ask<wire_tensor>(
    *gpu, expert_batch{0, {1}, {3}, pack_f32(x.data(), {2, hidden}), {}});
  CAF_CHECK(!bad_shape);
  caf::anon_send_exit(*gpu, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(cpu, caf::exit_reason::user_shutdown);
}

CAF_TEST(the int8 cuda expert actor matches the int8 cpu twin) {
  if (!gpu_available())
    return;
  auto gpu
    = spawn_cuda_expert(sys, *ckpt, ids, on_gpu(weight_quantization::int8));
  CAF_REQUIRE(gpu);
  auto q = int8_expert_weights::quantize(*experts);
  const auto& cfg = experts->config();
  const int64_t hidden = cfg.hidden_size;
  const int64_t ffn = cfg.intermediate_size;
  std::mt19937 gen{6};
  for (auto counts :
       {std::vector<uint32_t>{1, 0}, {3, 31}, {257, 2}, {3000, 1500}}) {
    int64_t n = counts[0] + counts[1];
    auto x = uniform_floats(static_cast<size_t>(n * hidden), gen);
    expert_batch batch{1, {4, 1}, counts, pack_f32(x.data(), {n, hidden}), {}};
    auto got = ask<wire_tensor>(*gpu, batch);
    CAF_REQUIRE(got);
    std::vector<float> g;
    unpack_f32(*got, g);
    std::vector<double> want(static_cast<size_t>(n * hidden));
    int64_t row = 0;
    for (size_t i = 0; i < counts.size(); ++i) {
      const auto* e = q->find(1, batch.expert_ids[i]);
      std::vector<float> w1(e->w1.q.size()), w3(e->w3.q.size()),
        w2(e->w2.q.size());
      cpu::dequantize_int8_rows(e->w1.q.data(), e->w1.scales.data(), ffn,
                                hidden, w1.data());
      cpu::dequantize_int8_rows(e->w3.q.data(), e->w3.scales.data(), ffn,
                                hidden, w3.data());
      cpu::dequantize_int8_rows(e->w2.q.data(), e->w2.scales.data(), hidden,
                                ffn, w2.data());
      for (uint32_t r = 0; r < counts[i]; ++r, ++row)
        swiglu_row_f64(x.data() + row * hidden, w1.data(), w3.data(), w2.data(),
                       hidden, ffn, want.data() + row * hidden);
    }
    CAF_CHECK_LESS(rel_error(g, want), 3e-2);
  }
  caf::anon_send_exit(*gpu, caf::exit_reason::user_shutdown);
}

CAF_TEST(experts the model does not have are refused naming the folder) {
  // Before the device is looked at: the same answer with or without a GPU.
  auto refused = spawn_cuda_expert(sys, *ckpt, {1, 9}, on_gpu());
  CAF_REQUIRE(!refused);
  CAF_CHECK_EQUAL(describe(refused.error()),
                  ckpt->dir() + ": expert 9 is outside the model (8 experts)");
}

CAF_TEST(an expert whose tensors the checkpoint lacks is refused) {
  // Only the hosted experts' tensors matter to a worker.
  temp_dir dir;
  auto cfg = small_model_config(320, 128, 128, 2, 4, 2, 32, 8, 2);
  const auto missing = expert_weight_name(1, 5, "w2");
  write_checkpoint(dir.path(), config_json(cfg),
                   without_tensor(random_mixtral_tensors(cfg, 3, 0.3f),
                                  missing));
  auto holed = checkpoint::open(dir.path());
  CAF_REQUIRE(holed);
  auto refused = spawn_cuda_expert(sys, *holed, {4, 5}, on_gpu());
  CAF_REQUIRE(!refused);
  CAF_CHECK_EQUAL(describe(refused.error()),
                  dir.path() + ": missing tensor '" + missing + "'");
  if (!gpu_available())
    return;
  auto other = spawn_cuda_expert(sys, *holed, {4, 6}, on_gpu());
  CAF_CHECK(other);
  if (other)
    caf::anon_send_exit(*other, caf::exit_reason::user_shutdown);
}

CAF_TEST(an expert cache smaller than one layer of hosted experts is refused) {
  // Before the device is looked at: the same answer with or without a GPU.
  auto refused = spawn_cuda_expert(sys, *ckpt, ids,
                                   on_gpu(weight_quantization::none, 2));
  CAF_REQUIRE(!refused);
  CAF_CHECK_EQUAL(describe(refused.error())
                    .rfind("node.toml: [worker] gpu_expert_slots = 2: a step "
                           "can need 3 experts of one layer at once",
                           0),
                  0u);
}

CAF_TEST(a cached cuda expert actor answers as one with every expert resident) {
  if (!gpu_available())
    return;
  const int64_t hidden = experts->config().hidden_size;
  using wq = weight_quantization;
  using mm = expert_miss_mode;
  for (auto [quant, misses] :
       {std::pair{wq::none, mm::load}, std::pair{wq::none, mm::host},
        std::pair{wq::none, mm::automatic}, std::pair{wq::int8, mm::load}}) {
    CAF_MESSAGE("int8 " << (quant == wq::int8) << ", misses "
                        << static_cast<int>(misses));
    auto resident = spawn_cuda_expert(sys, *ckpt, ids, on_gpu(quant));
    CAF_REQUIRE(resident);
    auto metrics = std::make_shared<node_metrics>("worker-1");
    // One layer's hosted experts on the device: every step evicts.
    auto opts = on_gpu(quant, 3, misses);
    opts.metrics = metrics;
    auto cached = spawn_cuda_expert(sys, *ckpt, ids, opts);
    CAF_REQUIRE(cached);
    std::mt19937 gen{11};
    const std::vector<std::vector<uint32_t>> id_sets{
      {6, 1, 4}, {1}, {4, 6}, {6}, {1, 4}};
    for (int step = 0; step < 10; ++step)
      for (uint32_t layer = 0; layer < 2; ++layer) {
        const auto& ids = id_sets[static_cast<size_t>(step + layer) % 5];
        std::vector<uint32_t> counts;
        for (size_t i = 0; i < ids.size(); ++i)
          counts.push_back(step == 4 ? 300u : 1u + gen() % 4);
        int64_t n = 0;
        for (auto c : counts)
          n += c;
        auto x = uniform_floats(static_cast<size_t>(n * hidden), gen);
        expert_batch batch{layer, ids, counts, pack_f32(x.data(), {n, hidden}),
                           {}};
        // The router's guess for the next layer: right or wrong.
        if (layer == 0)
          batch.stage_next = id_sets[static_cast<size_t>(step + 1) % 5];
        auto want = ask<wire_tensor>(*resident, batch);
        auto got = ask<wire_tensor>(*cached, batch);
        CAF_REQUIRE(want);
        CAF_REQUIRE(got);
        std::vector<float> g;
        std::vector<float> w;
        unpack_f32(*got, g);
        unpack_f32(*want, w);
        // Copied experts run the resident ones' kernels on the same bytes;
        // the host's sum in another order.
        CAF_CHECK_LESS(rel_error(g, w), misses == mm::load ? 1e-6 : 1e-3);
      }
    auto text = metrics->text();
    CAF_CHECK_GREATER(metric_sum(text, "voltinfer_expert_cache_hits_total"),
                      0.0);
    CAF_CHECK_GREATER(metric_sum(text, "voltinfer_expert_cache_misses_total"),
                      0.0);
    CAF_CHECK_GREATER(metric_sum(text, "voltinfer_expert_cache_bytes_total"),
                      0.0);
    // The tiny model's host is slower than its bus: the device takes a part
    // of a miss the host computes.
    if (misses == mm::host) {
      CAF_CHECK_GREATER(
        metric_sum(text, "voltinfer_expert_cache_host_computed_total"), 0.0);
      CAF_CHECK_GREATER(
        metric_sum(text, "voltinfer_expert_cache_host_split_total"), 0.0);
    }
    if (misses == mm::load)
      CAF_CHECK_EQUAL(
        metric_sum(text, "voltinfer_expert_cache_host_computed_total"), 0.0);
    caf::anon_send_exit(*resident, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(*cached, caf::exit_reason::user_shutdown);
  }
}

CAF_TEST_FIXTURE_SCOPE_END
()
