// Fuzzes the HTTP API's request handling (http/): a request body through
// parse_body, parse_completion for both endpoints, and prepare_requests
// against the text fixture (its real tokenizer and chat template). Refusals
// must be one-line OpenAI errors of the documented statuses; an accepted
// request must hold its fields within their documented ranges, and every
// engine request it becomes must pass the engine's own checks
// (scheduler::validate with a KV pool the size of the model's context): what
// the engine would refuse is the API's to refuse, with a 400.

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/scheduler.hpp"
#include "fuzz/fuzz_check.hpp"
#include "http/engine_requests.hpp"
#include "http/json_fields.hpp"
#include "http/openai_request.hpp"
#include "http/served_model.hpp"

using namespace volt;
using namespace volt::http;

namespace {

constexpr int64_t page_size = 16;

/// The text fixture served with each chat format Volt renders.
struct fixture {
  served_model mistral;
  served_model chatml;
  std::unique_ptr<scheduler> engine;
};

served_model load_model(const std::string& dir, const model_config& config,
                        const char* chat_format) {
  auto model = load_served_model(dir, config, "", chat_format);
  VOLT_FUZZ_REQUIRE(model && model->tok && model->chat,
                    std::string{"fixture served with "} + chat_format);
  return std::move(*model);
}

fixture load_fixture() {
  auto dir = std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-text-a";
  auto config = read_model_config(dir);
  VOLT_FUZZ_REQUIRE(static_cast<bool>(config), "fixture config.json");
  auto pages = (config->max_position_embeddings + page_size - 1) / page_size;
  return {load_model(dir, *config, "mistral"),
          load_model(dir, *config, "chatml"),
          std::make_unique<scheduler>(*config, page_size, pages,
                                      scheduler_options{})};
}

const fixture& fx() {
  static fixture f = load_fixture();
  return f;
}

void check_error(const api_error& err, const char* stage) {
  VOLT_FUZZ_REQUIRE(err.status == 400 || err.status == 404 || err.status == 413,
                    std::string{stage} + ": status "
                      + std::to_string(err.status));
  VOLT_FUZZ_REQUIRE(
    !err.message.empty() && err.message.find('\n') == std::string::npos,
    std::string{stage} + ": message is not one line: " + err.message);
  // The body the client gets must render.
  auto body = dump_json(to_json(err));
  VOLT_FUZZ_REQUIRE(nlohmann::json::accept(body),
                    std::string{stage} + ": bad body");
}

void check_params(const completion_params& p) {
  VOLT_FUZZ_REQUIRE(p.n >= 1 && p.n <= max_sequences_per_request,
                    "n out of range");
  VOLT_FUZZ_REQUIRE(p.temperature >= 0 && p.temperature <= 2, "temperature");
  VOLT_FUZZ_REQUIRE(p.top_p > 0 && p.top_p <= 1, "top_p");
  VOLT_FUZZ_REQUIRE(p.stop.size() <= max_stop_strings, "too many stop strings");
  for (auto& s : p.stop)
    VOLT_FUZZ_REQUIRE(!s.empty(), "empty stop string");
  VOLT_FUZZ_REQUIRE(!p.logprobs
                      || (*p.logprobs >= 0 && *p.logprobs <= max_logprobs),
                    "logprobs out of range");
  VOLT_FUZZ_REQUIRE(!p.include_usage || p.stream,
                    "stream_options without stream");
  if (p.kind == api_kind::completion)
    VOLT_FUZZ_REQUIRE(!p.prompts.empty() && p.prompts.size() <= max_prompts,
                      "prompt count");
  else
    VOLT_FUZZ_REQUIRE(!p.messages.empty(), "no messages");
}

void check_prepared(const completion_params& p, const engine_requests& out) {
  auto wanted = p.kind == api_kind::chat ? size_t{1} : p.prompts.size();
  VOLT_FUZZ_REQUIRE(out.requests.size() == wanted
                      && out.prompt_texts.size() == wanted,
                    "one engine request per prompt");
  for (auto& req : out.requests) {
    auto err = fx().engine->validate(req);
    VOLT_FUZZ_REQUIRE(!err, "the engine refuses a request the API accepted: "
                              + describe(err));
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text{reinterpret_cast<const char*>(data), size};
  nlohmann::json body;
  if (auto err = parse_body(text, body)) {
    check_error(*err, "parse_body");
    return 0;
  }
  // Either chat format, so both renderers meet every input over a run.
  const auto& model = size % 2 == 0 ? fx().mistral : fx().chatml;
  for (auto kind : {api_kind::completion, api_kind::chat}) {
    completion_params params;
    if (auto err = parse_completion(body, kind, params)) {
      check_error(*err, "parse_completion");
      continue;
    }
    check_params(params);
    engine_requests out;
    if (auto err = prepare_requests(params, model, out)) {
      check_error(*err, "prepare_requests");
      continue;
    }
    check_prepared(params, out);
  }
  return 0;
}
