#include "http/engine_requests.hpp"

#include <algorithm>
#include <random>

#include "base/error.hpp"

namespace volt::http {

namespace {

uint64_t fresh_seed() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  return gen();
}

/// The field that carries the prompt, for errors.
const char* prompt_field(api_kind kind) {
  return kind == api_kind::chat ? "messages" : "prompt";
}

std::optional<api_error> check_ids(const std::vector<int32_t>& ids,
                                   const served_model& model,
                                   const completion_params& params) {
  auto field = prompt_field(params.kind);
  if (ids.empty())
    return bad_request(field, std::string{field}
                                + ": empty (no token to start from)");
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] >= model.vocab_size)
      return bad_request(field, std::string{field} + ": token id "
                                  + std::to_string(ids[i]) + " at index "
                                  + std::to_string(i) + " is outside [0, "
                                  + std::to_string(model.vocab_size) + ")");
  auto len = static_cast<int64_t>(ids.size());
  if (len > model.max_model_len)
    return too_large(field,
                     "This model's maximum context length is "
                       + std::to_string(model.max_model_len)
                       + " tokens; the " + field + " has "
                       + std::to_string(len) + " tokens",
                     "context_length_exceeded");
  return std::nullopt;
}

/// The prompt ids of every prompt, and their text for echo.
std::optional<api_error> prompt_ids(const completion_params& params,
                                    const served_model& model,
                                    std::vector<std::vector<int32_t>>& ids,
                                    std::vector<std::string>& texts) {
  if (params.kind == api_kind::chat) {
    if (!model.chat)
      return bad_request("messages", model.chat_error);
    auto rendered = model.chat->apply(params.messages, true);
    if (!rendered)
      return bad_request("messages", "messages: " + describe(rendered.error()));
    ids.push_back(std::move(*rendered));
    texts.emplace_back();
    return std::nullopt;
  }
  for (const auto& p : params.prompts) {
    if (p.ids) {
      ids.push_back(*p.ids);
      std::string text;
      if (model.tok && params.echo)
        if (auto decoded = model.tok->decode(*p.ids))
          text = std::move(*decoded);
      texts.push_back(std::move(text));
      continue;
    }
    if (!model.tok)
      return bad_request("prompt", "prompt: text needs a tokenizer, but "
                                     + model.text_error);
    ids.push_back(model.tok->encode(p.text, true));
    texts.push_back(p.text);
  }
  return std::nullopt;
}

} // namespace

std::optional<api_error> prepare_requests(const completion_params& params,
                                          const served_model& model,
                                          engine_requests& out) {
  out = engine_requests{};
  if (!params.model.empty() && params.model != model.name)
    return model_not_found(params.model, model.name);
  if (!model.tok && !params.stop.empty())
    return bad_request("stop", "stop: strings need a tokenizer, but "
                                 + model.text_error);
  std::vector<std::vector<int32_t>> ids;
  if (auto err = prompt_ids(params, model, ids, out.prompt_texts))
    return err;
  auto seed = params.seed ? *params.seed : fresh_seed();
  auto stop_ids = params.stop_token_ids;
  for (size_t i = 0; i < stop_ids.size(); ++i)
    if (stop_ids[i] >= model.vocab_size)
      return bad_request("stop_token_ids",
                         "stop_token_ids: token id " + std::to_string(stop_ids[i])
                           + " at index " + std::to_string(i)
                           + " is outside [0, "
                           + std::to_string(model.vocab_size) + ")");
  // Every end-of-sequence id the tokenizer names (generation_config.json may
  // list several; the engine knows config.json's one), unless the client
  // wants to run past them.
  if (model.tok && !params.ignore_eos)
    for (auto id : model.tok->eos_ids())
      if (id < model.vocab_size)
        stop_ids.push_back(id);
  for (auto& prompt : ids) {
    if (auto err = check_ids(prompt, model, params))
      return err;
    generate_request req;
    auto room = model.max_model_len - static_cast<int64_t>(prompt.size());
    if (params.max_tokens)
      req.max_new_tokens = *params.max_tokens;
    else
      req.max_new_tokens = params.kind == api_kind::chat
                             ? static_cast<uint32_t>(std::max<int64_t>(room, 0))
                             : 16;
    req.prompt = std::move(prompt);
    req.ignore_eos = params.ignore_eos;
    req.stop_token_ids = stop_ids;
    // The engine returns the token's own logprob only with alternatives.
    if (params.logprobs)
      req.logprobs = std::max<int32_t>(*params.logprobs, 1);
    req.temperature = static_cast<float>(params.temperature);
    req.top_p = static_cast<float>(params.top_p);
    req.seed = seed;
    req.n = params.n;
    out.requests.push_back(std::move(req));
  }
  return std::nullopt;
}

} // namespace volt::http
