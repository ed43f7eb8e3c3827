#pragma once

// `volt-node bench moe-layer`: options and results shared by the command
// (apps/bench_command.cpp) and its CUDA half (apps/bench_moe_cuda.cpp).

#include <cstdint>
#include <string>
#include <vector>

#include "caf/expected.hpp"

namespace volt {

struct moe_bench_options {
  int device = -1; // -1: CPU, else the CUDA device index
  bool int8 = false;
  std::vector<int64_t> tokens;
  int64_t hidden = 4096;
  int64_t ffn = 14336;
  int64_t experts = 8;
  int64_t topk = 2;
  int64_t iters = 50;
  int64_t warmup = 5;
  std::string path = "auto"; // auto, decode, gemm or all
  /// Decode-path knobs (0: keep the built-in default).
  int64_t decode_chunks = 0;
  int64_t w13_splits = 0;
  int64_t w2_splits = 0;
  /// Also time every decode variant (chunks x splits) at token counts <= 128.
  bool sweep_decode = false;
  int64_t gating_tokens = 4096;
  uint64_t seed = 42;
};

struct moe_bench_row {
  int64_t tokens = 0;
  std::string path; // decode, gemm, cpu, or sweep (a decode variant)
  std::string variant; // decode knobs, e.g. "c2 s13=2 s2=4"
  double median_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  int64_t active_experts = 0;
  double floor_ms = 0; // active experts' weight bytes / copy bandwidth
};

struct moe_bench_result {
  std::string device; // card name or "cpu"
  double copy_gbs = 0; // device-to-device copy, bytes read + written per s
  uint64_t expert_bytes = 0; // weights (and scales) of one expert
  std::vector<moe_bench_row> rows;
  double gating_ms = 0; // fused gating at gating_tokens tokens
};

/// Runs the benchmark on the GPU; an error when built without CUDA.
caf::expected<moe_bench_result> run_moe_bench_cuda(const moe_bench_options& o);

} // namespace volt
