#define CAF_SUITE model.reference

// End-to-end correctness of the CPU executor through the real engine: against
// Hugging Face's outputs for the tiny fixtures (random weights, and a model
// trained on text), and against an independent float64 implementation for
// BF16/F16 weights and for checkpoints of other shapes and layouts.

#include <map>
#include <set>

#include "model/json.hpp"
#include "tests/engine_harness.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/model/mixtral_f64.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// One case of reference.json.
struct reference_case {
  std::vector<int32_t> input_ids;
  std::vector<double> last_logits;
  std::vector<double> all_logits; // [n, vocab] flattened
  std::vector<std::vector<std::set<int>>> router_topk; // [layer][token]
  std::vector<int32_t> greedy_new_tokens;
};

std::vector<double> doubles(const json::value& arr) {
  return arr.get<std::vector<double>>();
}

std::vector<reference_case> load_reference() {
  std::vector<reference_case> out;
  auto doc = json::parse_file(tiny_mixtral_dir() + "/reference.json");
  if (!doc) {
    CAF_FAIL("reference.json: " << describe(doc.error()));
  }
  for (const auto& c : doc->at("cases")) {
    reference_case rc;
    rc.input_ids = c.at("input_ids").get<std::vector<int32_t>>();
    rc.last_logits = doubles(c.at("last_logits"));
    for (const auto& row : c.at("all_logits"))
      for (auto x : doubles(row))
        rc.all_logits.push_back(x);
    for (const auto& layer : c.at("router_topk_per_layer")) {
      rc.router_topk.emplace_back();
      for (const auto& tok : layer)
        rc.router_topk.back().push_back(tok.get<std::set<int>>());
    }
    rc.greedy_new_tokens = c.at("greedy_new_tokens").get<std::vector<int32_t>>();
    out.push_back(std::move(rc));
  }
  return out;
}

generate_request full_request(const std::vector<int32_t>& prompt,
                              uint32_t new_tokens) {
  generate_request req;
  req.prompt = prompt;
  req.max_new_tokens = new_tokens;
  req.ignore_eos = true; // the references decode a fixed number of tokens
  req.return_all_logits = true;
  req.return_routing = true;
  return req;
}

/// Routing of a result as [layer][token] -> set of experts.
std::vector<std::vector<std::set<int>>>
routing_sets(const generate_result& res, int64_t layers, int64_t n, int64_t k) {
  auto ids = ints_of(res.routing);
  std::vector<std::vector<std::set<int>>> out(layers,
                                              std::vector<std::set<int>>(n));
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t t = 0; t < n; ++t)
      for (int64_t j = 0; j < k; ++j)
        out[l][t].insert(ids[(l * n + t) * k + j]);
  return out;
}

std::vector<double> flatten(const std::vector<std::vector<double>>& rows) {
  std::vector<double> out;
  for (const auto& r : rows)
    out.insert(out.end(), r.begin(), r.end());
  return out;
}

/// Checks the engine on `ckpt` against the float64 implementation for
/// `prompts`.
void check_against_f64(const checkpoint& ckpt,
                       const std::vector<std::vector<int32_t>>& prompts,
                       double tolerance) {
  engine_harness node{ckpt};
  CAF_REQUIRE(!node.spawn_error());
  mixtral_f64 ref{ckpt};
  const auto& cfg = ckpt.config();
  for (const auto& prompt : prompts) {
    auto res = node.generate(full_request(prompt, 6));
    CAF_REQUIRE(res);
    std::vector<std::vector<std::vector<int>>> ref_routing;
    auto ref_logits = ref.forward(prompt, &ref_routing);
    auto err = relative_error(floats_of(res->all_logits), flatten(ref_logits));
    CAF_MESSAGE("prompt of " << prompt.size()
                             << " tokens: all-logits relative error "
                             << sci(err));
    CAF_CHECK_LESS(err, tolerance);
    CAF_CHECK_LESS(relative_error(floats_of(res->last_logits),
                                  ref_logits.back()),
                   tolerance);
    auto got = routing_sets(*res, cfg.num_hidden_layers,
                            static_cast<int64_t>(prompt.size()),
                            cfg.num_experts_per_tok);
    for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
      for (size_t t = 0; t < prompt.size(); ++t)
        CAF_CHECK(
          got[l][t]
          == std::set<int>(ref_routing[l][t].begin(), ref_routing[l][t].end()));
    CAF_CHECK_EQUAL(res->new_tokens, ref.greedy(prompt, 6));
  }
}

model_config other_shape() {
  // GQA 4:1 and an explicit head_dim (16, not hidden / heads = 12).
  auto cfg = small_model_config(97, 48, 40, 3, 4, 1, 16, 6, 3);
  cfg.max_position_embeddings = 64;
  cfg.rms_norm_eps = 1e-6;
  cfg.tie_word_embeddings = true;
  return cfg;
}

const std::vector<std::vector<int32_t>> other_prompts
  = {{5}, {1, 50, 96, 3, 3, 7, 0, 12, 80}};

} // namespace

CAF_TEST(the fixture reproduces transformers logits tokens and routing) {
  auto ckpt = checkpoint::open(tiny_mixtral_dir());
  CAF_REQUIRE(ckpt);
  engine_harness node{*ckpt};
  CAF_REQUIRE(!node.spawn_error());
  auto cases = load_reference();
  CAF_REQUIRE_EQUAL(cases.size(), 4u);
  for (const auto& rc : cases) {
    auto res = node.generate(full_request(rc.input_ids, 12));
    CAF_REQUIRE(res);
    auto last_err = relative_error(floats_of(res->last_logits), rc.last_logits);
    auto all_err = relative_error(floats_of(res->all_logits), rc.all_logits);
    CAF_MESSAGE(rc.input_ids.size()
                << " prompt tokens: last-logits relative error "
                << sci(last_err) << ", all-logits " << sci(all_err));
    // 1e-4 is the bound; all_logits are rounded to 5 decimals in the
    // file.
    CAF_CHECK_LESS(last_err, 1e-4);
    CAF_CHECK_LESS(all_err, 1e-4);
    CAF_CHECK_EQUAL(res->new_tokens, rc.greedy_new_tokens);
    auto got = routing_sets(*res, 2, static_cast<int64_t>(rc.input_ids.size()),
                            2);
    CAF_CHECK(got == rc.router_topk);
  }
}

CAF_TEST(the text model reproduces transformers greedy continuations) {
  auto dir = std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-text-a";
  auto ckpt = checkpoint::open(dir);
  CAF_REQUIRE(ckpt);
  engine_harness node{*ckpt};
  auto doc = json::parse_file(dir + "/reference.json");
  CAF_REQUIRE(doc);
  size_t n = 0;
  for (const auto& c : doc->at("cases")) {
    auto prompt = c.at("input_ids").get<std::vector<int32_t>>();
    auto want = c.at("greedy_new_tokens").get<std::vector<int32_t>>();
    auto res = node.generate(request_for(prompt, 32));
    CAF_REQUIRE(res);
    auto err = relative_error(floats_of(res->last_logits),
                              doubles(c.at("last_logits")));
    CAF_CHECK_LESS(err, 1e-4);
    CAF_CHECK_EQUAL(res->new_tokens, want);
    ++n;
  }
  CAF_CHECK_EQUAL(n, 7u);
}

CAF_TEST(
  bf16 weights match float64 on the same weights and stay near transformers) {
  // BF16 keeps 8 significant bits: every weight moves by up to 2^-9 relative,
  // so the logits move by about 1e-2 relative from the float32 model's. Against
  // a float64 computation on the same rounded weights our float32 arithmetic
  // must stay within the usual 1e-4.
  temp_dir dir;
  auto tensors = convert_tensors(copy_tensors(tiny_mixtral_dir()), dtype::bf16);
  auto cfg_text = read_text(tiny_mixtral_dir() + "/config.json");
  CAF_REQUIRE(!write_checkpoint(dir.path(), cfg_text, tensors));
  auto ckpt = checkpoint::open(dir.path());
  CAF_REQUIRE(ckpt);
  CAF_CHECK_EQUAL(to_string(ckpt->find("model.norm.weight")->type),
                  to_string(dtype::bf16));
  std::vector<std::vector<int32_t>> prompts;
  auto cases = load_reference();
  for (const auto& rc : cases)
    prompts.push_back(rc.input_ids);
  check_against_f64(*ckpt, prompts, 1e-4);
  engine_harness node{*ckpt};
  for (const auto& rc : cases) {
    auto res = node.generate(full_request(rc.input_ids, 12));
    CAF_REQUIRE(res);
    auto err = relative_error(floats_of(res->last_logits), rc.last_logits);
    CAF_MESSAGE("bf16 vs transformers float32: last-logits relative error "
                << sci(err));
    CAF_CHECK_LESS(err, 3e-2);
  }
}

CAF_TEST(f16 weights match float64 on the same weights) {
  temp_dir dir;
  auto tensors = convert_tensors(copy_tensors(tiny_mixtral_dir()), dtype::f16);
  CAF_REQUIRE(!write_checkpoint(
    dir.path(), read_text(tiny_mixtral_dir() + "/config.json"), tensors));
  auto ckpt = checkpoint::open(dir.path());
  CAF_REQUIRE(ckpt);
  check_against_f64(*ckpt, {{203}, {7, 1, 300, 42, 42}}, 1e-4);
}

CAF_TEST(other shapes : 6 experts top
         - 3 GQA 4 to 1 explicit head_dim tied embeddings) {
  temp_dir dir;
  auto cfg = other_shape();
  CAF_REQUIRE(!write_checkpoint(dir.path(), config_json(cfg),
                                random_mixtral_tensors(cfg, 7, 0.35f)));
  auto ckpt = checkpoint::open(dir.path());
  CAF_REQUIRE(ckpt);
  check_against_f64(*ckpt, other_prompts, 1e-5);
}

CAF_TEST(other layouts
         : rope_parameters and null head_dim with sharded bf16 files) {
  temp_dir dir;
  auto cfg = other_shape();
  cfg.head_dim = 0; // written as null: derived as hidden / heads = 12
  cfg.num_key_value_heads = 2;
  cfg.tie_word_embeddings = false;
  cfg.sliding_window = 4;
  // The newer transformers layout: rope_theta inside rope_parameters, head_dim
  // null.
  auto doc = config_doc(cfg);
  doc.erase("rope_theta");
  doc["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 10000.0}};
  doc["head_dim"] = nullptr;
  auto text = doc.dump(2);
  cfg.head_dim = 12;
  auto tensors = random_mixtral_tensors(cfg, 11, 0.35f, dtype::bf16);
  std::vector<tensor_to_write> first(tensors.begin(),
                                     tensors.begin() + tensors.size() / 2);
  std::vector<tensor_to_write> second(tensors.begin() + tensors.size() / 2,
                                      tensors.end());
  CAF_REQUIRE(!write_checkpoint(dir.path(), text, first,
                                "model-00001-of-00002.safetensors"));
  CAF_REQUIRE(
    !write_safetensors(dir.file("model-00002-of-00002.safetensors"), second));
  auto ckpt = checkpoint::open(dir.path());
  CAF_REQUIRE(ckpt);
  CAF_CHECK_EQUAL(ckpt->config().head_dim, 12);
  CAF_CHECK_EQUAL(ckpt->config().sliding_window, 4);
  check_against_f64(*ckpt, other_prompts, 1e-5);
}
