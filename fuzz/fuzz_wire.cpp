// Fuzzes the decoding of what nodes send each other: CAF's binary format (as
// BASP carries a message's fields) into Volt's message types, then the code
// that takes them apart at each node boundary. The first byte picks the
// boundary:
//   0  a worker receives an expert_batch: check_expert_batch against experts
//      of the tiny fixture, then unpack_f32 and run_experts, and the reply
//      must pass the router's own check;
//   1  a router receives an expert's reply: check_wire_tensor for the rows it
//      asked for (the second byte), then the copy expert_dispatch makes;
//   2  a client receives a generate_result: generation_to_json and
//      generation_to_text, as `generate --connect` prints it;
//   3  a router receives a generate_request: scheduler::validate.
// Whatever decodes must encode and decode again to the same bytes. With
// VOLT_FUZZ_WRITE_SEEDS=<folder> set, the target writes the seeds of
// fuzz/corpus/fuzz_wire (honest messages of each boundary) there and exits.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "actors/expert.hpp"
#include "actors/messages.hpp"
#include "apps/generation_output.hpp"
#include "caf/binary_deserializer.hpp"
#include "caf/binary_serializer.hpp"
#include "engine/scheduler.hpp"
#include "fuzz/bounded_deserializer.hpp"
#include "fuzz/fuzz_check.hpp"
#include "model/checkpoint.hpp"
#include "model/forward.hpp"
#include "model/json.hpp"
#include "net/wire_tensor.hpp"

using namespace volt;

namespace {

/// Experts 0 and 2 of the tiny fixture: batches for others must be refused.
struct fixture {
  std::shared_ptr<const expert_weights> experts;
  std::unique_ptr<scheduler> engine;
};

const fixture& fx() {
  static fixture f = [] {
    auto ckpt
      = checkpoint::open(std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-a");
    VOLT_FUZZ_REQUIRE(static_cast<bool>(ckpt), "fixture checkpoint");
    auto experts = expert_weights::load(*ckpt, {0, 2});
    VOLT_FUZZ_REQUIRE(static_cast<bool>(experts), "fixture experts");
    auto engine = std::make_unique<scheduler>((*experts)->config(), 16, 64,
                                              scheduler_options{});
    return fixture{std::move(*experts), std::move(engine)};
  }();
  return f;
}

template <class T>
std::vector<char> encode(T& x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  auto err = sink(x);
  VOLT_FUZZ_REQUIRE(!err, "encoding failed: " + caf::to_string(err));
  return buf;
}

/// Decodes `x` from the input; on success checks the round trip.
template <class T>
bool decode(const uint8_t* data, size_t size, T& x) {
  fuzz::bounded_deserializer src{reinterpret_cast<const char*>(data), size};
  if (src(x))
    return false;
  if (src.saw_non_finite())
    return true; // cannot be encoded again (bounded_deserializer.hpp)
  auto once = encode(x);
  T y;
  caf::binary_deserializer again{nullptr, once};
  VOLT_FUZZ_REQUIRE(!again(y), "encoded message does not decode");
  VOLT_FUZZ_REQUIRE(encode(y) == once, "message changed on the round trip");
  return true;
}

void worker_receives(const uint8_t* data, size_t size) {
  expert_batch batch;
  if (!decode(data, size, batch))
    return;
  const auto& weights = *fx().experts;
  if (auto err = check_expert_batch(weights.hosting(), batch)) {
    VOLT_FUZZ_REQUIRE(err == volt_errc::invalid_request
                        || err == volt_errc::missing_expert,
                      "refused with another code: " + describe(err));
    return;
  }
  auto hidden = weights.config().hidden_size;
  uint64_t rows = 0;
  for (auto c : batch.row_counts)
    rows += c;
  std::vector<float> in;
  unpack_f32(batch.rows, in);
  VOLT_FUZZ_REQUIRE(in.size() == rows * static_cast<uint64_t>(hidden),
                    "accepted rows disagree with row_counts");
  std::vector<float> out(in.size());
  auto err = run_experts(weights, batch.layer, batch.expert_ids,
                         batch.row_counts, in.data(), out.data());
  VOLT_FUZZ_REQUIRE(!err,
                    "run_experts refused a checked batch: " + describe(err));
  auto reply = pack_f32(out.data(), batch.rows.shape);
  VOLT_FUZZ_REQUIRE(!check_wire_tensor(reply, dtype::f32,
                                       {static_cast<int64_t>(rows), hidden},
                                       "reply"),
                    "the router would refuse an honest reply");
}

void router_receives_rows(const uint8_t* data, size_t size) {
  if (size < 1)
    return;
  int64_t rows = data[0];
  wire_tensor t;
  if (!decode(data + 1, size - 1, t))
    return;
  auto hidden = fx().experts->config().hidden_size;
  if (auto err = check_wire_tensor(t, dtype::f32, {rows, hidden}, "reply")) {
    VOLT_FUZZ_REQUIRE(err == volt_errc::invalid_request,
                      "refused with another code: " + describe(err));
    return;
  }
  VOLT_FUZZ_REQUIRE(t.bytes.size()
                      == static_cast<size_t>(rows * hidden) * sizeof(float),
                    "accepted reply of the wrong size");
  // What expert_dispatch::on_result does with it.
  std::vector<float> out(static_cast<size_t>(rows * hidden));
  std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
}

void client_receives(const uint8_t* data, size_t size) {
  generate_result res;
  if (!decode(data, size, res))
    return;
  generate_request req;
  req.prompt = {1, 2, 3};
  req.return_all_logits = true;
  req.return_routing = true;
  auto text = generation_to_json(req, res, {});
  VOLT_FUZZ_REQUIRE(static_cast<bool>(json::parse(text, "output")),
                    "generation_to_json printed invalid JSON");
  generation_to_text(req, res);
}

void router_receives_request(const uint8_t* data, size_t size) {
  generate_request req;
  if (!decode(data, size, req))
    return;
  if (auto err = fx().engine->validate(req))
    VOLT_FUZZ_REQUIRE(err == volt_errc::invalid_request,
                      "refused with another code: " + describe(err));
}

/// Writes `x`, encoded after the boundary byte `mode`, to `dir`/`name`.
template <class T>
void write_seed(const std::string& dir, const std::string& name, uint8_t mode,
                T x, std::vector<char> prefix = {}) {
  auto bytes = encode(x);
  bytes.insert(bytes.begin(), prefix.begin(), prefix.end());
  bytes.insert(bytes.begin(), static_cast<char>(mode));
  auto path = dir + "/" + name;
  auto* f = std::fopen(path.c_str(), "wb");
  VOLT_FUZZ_REQUIRE(f != nullptr, "cannot write " + path);
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

/// The committed seeds of fuzz/corpus/fuzz_wire: honest messages of each
/// boundary and a few near misses.
void write_seeds(const std::string& dir) {
  auto hidden = fx().experts->config().hidden_size;
  std::vector<float> rows(static_cast<size_t>(3 * hidden));
  for (size_t i = 0; i < rows.size(); ++i)
    rows[i] = static_cast<float>(i % 17) * 0.125f - 1.0f;
  expert_batch batch{1, {0, 2}, {2, 1}, pack_f32(rows.data(), {3, hidden}), {}};
  write_seed(dir, "batch", 0, batch);
  auto other = batch;
  other.expert_ids = {0, 1};
  write_seed(dir, "batch-expert-not-hosted", 0, other);
  other = batch;
  other.row_counts = {2, 2};
  write_seed(dir, "batch-short-rows", 0, other);
  other = batch;
  other.stage_next = {2, 0};
  write_seed(dir, "batch-stage-next", 0, other);
  other.stage_next = {9};
  write_seed(dir, "batch-stage-next-outside", 0, other);
  write_seed(dir, "reply", 1, pack_f32(rows.data(), {3, hidden}), {3});
  write_seed(dir, "reply-wrong-shape", 1, pack_f32(rows.data(), {hidden, 3}),
             {3});
  generate_result res;
  res.new_tokens = {5, 6, 7};
  res.sequences = {{5, 6, 7}, {5, 9}};
  res.finish_reasons = {"length", "eos"};
  std::vector<float> logits{0.5f, -1.25f, 3.0f, 0.0f, 1e-3f, -7.5f};
  res.last_logits = pack_f32(logits.data(), {6});
  res.all_logits = pack_f32(logits.data(), {2, 3});
  std::vector<int32_t> routing{0, 2, 1, 3, 4, 5, 7, 6};
  res.routing = pack_i32(routing.data(), {2, 2, 2});
  res.finish_reason = "length";
  res.openai_finish_reasons = {"length", "stop"};
  res.logprobs = {{token_logprob{5, -0.5f, {{5, -0.5f}, {9, -1.5f}}}}};
  res.prompt_tokens = 2;
  res.completion_tokens = 5;
  res.prefill_seconds = 0.25;
  res.decode_seconds = 1.5;
  res.kv = kv_usage{16, 2, 1, 0, 0, 0};
  write_seed(dir, "result", 2, res);
  generate_request req;
  req.prompt = {1, 2, 3};
  req.max_new_tokens = 8;
  req.temperature = 0.7f;
  req.top_p = 0.9f;
  req.seed = 42;
  req.n = 2;
  req.logprobs = 2;
  req.stop_token_ids = {2};
  write_seed(dir, "request", 3, req);
  req.prompt = {1, 100000};
  write_seed(dir, "request-outside-vocab", 3, req);
}

} // namespace

/// VOLT_FUZZ_WRITE_SEEDS=<folder> writes the seeds there and exits.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("VOLT_FUZZ_WRITE_SEEDS")) {
    write_seeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1)
    return 0;
  switch (data[0] % 4) {
    case 0: worker_receives(data + 1, size - 1); break;
    case 1: router_receives_rows(data + 1, size - 1); break;
    case 2: client_receives(data + 1, size - 1); break;
    case 3: router_receives_request(data + 1, size - 1); break;
  }
  return 0;
}
