#include "http/openai_response.hpp"

#include <algorithm>
#include <chrono>
#include <iterator>
#include <random>

#include "http/json_fields.hpp"

namespace volt::http {

namespace {

std::string random_hex(size_t digits) {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  static const char* hex = "0123456789abcdef";
  std::string out;
  while (out.size() < digits) {
    auto bits = gen();
    for (int i = 0; i < 16 && out.size() < digits; ++i, bits >>= 4)
      out += hex[bits & 15];
  }
  return out;
}

const char* object_name(api_kind kind, bool chunk) {
  if (kind == api_kind::chat)
    return chunk ? "chat.completion.chunk" : "chat.completion";
  return "text_completion";
}

nlohmann::ordered_json reason_or_null(const std::string& reason) {
  return reason.empty() ? nlohmann::ordered_json{} : nlohmann::ordered_json(reason);
}

nlohmann::ordered_json head(const response_meta& meta, bool chunk) {
  return {{"id", meta.id},
          {"object", object_name(meta.kind, chunk)},
          {"created", meta.created},
          {"model", meta.model}};
}

} // namespace

response_meta new_response_meta(api_kind kind, std::string model) {
  response_meta meta;
  meta.kind = kind;
  meta.id = (kind == api_kind::chat ? "chatcmpl-" : "cmpl-") + random_hex(24);
  meta.created = std::chrono::duration_cast<std::chrono::seconds>(
                   std::chrono::system_clock::now().time_since_epoch())
                   .count();
  meta.model = std::move(model);
  return meta;
}

nlohmann::ordered_json usage_json(const usage_counts& usage) {
  return {{"prompt_tokens", usage.prompt_tokens},
          {"completion_tokens", usage.completion_tokens},
          {"total_tokens", usage.prompt_tokens + usage.completion_tokens}};
}

void degraded_summary::add(const std::vector<uint32_t>& experts, int64_t n) {
  std::vector<uint32_t> merged;
  std::set_union(missing_experts.begin(), missing_experts.end(),
                 experts.begin(), experts.end(), std::back_inserter(merged));
  missing_experts = std::move(merged);
  tokens += n;
}

void add_degraded(nlohmann::ordered_json& response,
                  const degraded_summary& degraded) {
  if (degraded.missing_experts.empty())
    return;
  response["degraded"] = {{"missing_experts", degraded.missing_experts},
                          {"tokens", degraded.tokens}};
}

nlohmann::ordered_json completion_response(const response_meta& meta,
                                   const std::vector<choice_result>& choices,
                                   const usage_counts& usage) {
  auto out = head(meta, false);
  auto list = nlohmann::ordered_json::array();
  for (const auto& c : choices) {
    nlohmann::ordered_json choice{{"index", c.index}};
    if (meta.kind == api_kind::chat)
      choice["message"] = {{"role", "assistant"}, {"content", c.text}};
    else
      choice["text"] = c.text;
    choice["logprobs"] = c.logprobs;
    choice["finish_reason"] = reason_or_null(c.finish_reason);
    if (c.with_token_ids)
      choice["token_ids"] = c.token_ids;
    list.push_back(std::move(choice));
  }
  out["choices"] = std::move(list);
  out["usage"] = usage_json(usage);
  return out;
}

nlohmann::ordered_json choice_chunk(const response_meta& meta, const choice_result& delta,
                            bool first, bool usage_null) {
  auto out = head(meta, true);
  nlohmann::ordered_json choice{{"index", delta.index}};
  if (meta.kind == api_kind::chat) {
    nlohmann::ordered_json d = nlohmann::ordered_json::object();
    if (first)
      d["role"] = "assistant";
    if (!delta.text.empty() || first)
      d["content"] = delta.text;
    choice["delta"] = std::move(d);
  } else {
    choice["text"] = delta.text;
  }
  choice["logprobs"] = delta.logprobs;
  choice["finish_reason"] = reason_or_null(delta.finish_reason);
  if (delta.with_token_ids)
    choice["token_ids"] = delta.token_ids;
  out["choices"] = nlohmann::ordered_json::array({std::move(choice)});
  if (usage_null)
    out["usage"] = nullptr;
  return out;
}

nlohmann::ordered_json usage_chunk(const response_meta& meta,
                           const usage_counts& usage) {
  auto out = head(meta, true);
  out["choices"] = nlohmann::ordered_json::array();
  out["usage"] = usage_json(usage);
  return out;
}

nlohmann::ordered_json empty_chunk(const response_meta& meta) {
  auto out = head(meta, true);
  out["choices"] = nlohmann::ordered_json::array();
  return out;
}

std::string sse_event(const nlohmann::ordered_json& value) {
  return "data: " + dump_json(value) + "\n\n";
}

} // namespace volt::http
