#include "http/openai_request.hpp"

#include <limits>

#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "engine/scheduler.hpp"
#include "http/json_fields.hpp"
#include "model/json.hpp"

namespace volt::http {

namespace {

/// Most alternatives per token: the engine's limit (OpenAI's top_logprobs
/// limit too).
constexpr int64_t max_top_logprobs = max_logprobs;

constexpr int64_t max_int32 = std::numeric_limits<int32_t>::max();

/// Reads an array of token ids at `where` (for errors).
std::optional<std::vector<int32_t>> token_ids(field_reader& fields,
                                              const std::string& name,
                                              const nlohmann::json& arr,
                                              const std::string& where) {
  std::vector<int32_t> ids;
  ids.reserve(arr.size());
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto& x = arr[i];
    if (!x.is_number_integer() || x.get<int64_t>() < 0
        || x.get<int64_t>() > max_int32) {
      fields.fail(name, where + "element " + std::to_string(i)
                          + ": expected a token id (an integer >= 0), got "
                          + json_excerpt(x));
      return std::nullopt;
    }
    ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  return ids;
}

/// `prompt`: a string, an array of strings, an array of token ids, or an
/// array of such arrays.
void read_prompts(field_reader& fields, completion_params& out) {
  auto x = fields.find("prompt");
  if (fields.error())
    return;
  if (x == nullptr)
    return fields.fail("prompt", "missing (a string or an array of token ids)");
  if (x->is_string()) {
    out.prompts.push_back({x->get<std::string>(), std::nullopt});
    return;
  }
  if (!x->is_array() || x->empty())
    return fields.fail("prompt", "expected a string, an array of strings, an "
                                 "array of token ids or an array of such "
                                 "arrays, got "
                                   + json_excerpt(*x));
  if ((*x)[0].is_number()) {
    if (auto ids = token_ids(fields, "prompt", *x, {}))
      out.prompts.push_back({{}, std::move(*ids)});
    return;
  }
  if (x->size() > max_prompts)
    return fields.fail("prompt", std::to_string(x->size())
                                   + " prompts; at most "
                                   + std::to_string(max_prompts)
                                   + " in one request");
  for (size_t i = 0; i < x->size() && !fields.error(); ++i) {
    const auto& p = (*x)[i];
    auto where = "element " + std::to_string(i) + ": ";
    if (p.is_string()) {
      out.prompts.push_back({p.get<std::string>(), std::nullopt});
    } else if (p.is_array() && !p.empty()) {
      if (auto ids = token_ids(fields, "prompt", p, where + "prompt "))
        out.prompts.push_back({{}, std::move(*ids)});
    } else {
      fields.fail("prompt", where + "expected a string or a non-empty array "
                                    "of token ids, got "
                              + json_excerpt(p));
    }
  }
}

/// One message's `content`: a string, or an array of text parts.
std::optional<std::string> message_content(field_reader& msg) {
  auto x = msg.find("content");
  if (x == nullptr)
    return std::string{};
  if (x->is_string())
    return x->get<std::string>();
  if (!x->is_array()) {
    msg.fail("content", "expected a string or an array of text parts, got "
                          + json_kind(*x));
    return std::nullopt;
  }
  std::string text;
  for (size_t i = 0; i < x->size(); ++i) {
    field_reader part{(*x)[i], msg.param("content") + "["
                                 + std::to_string(i) + "]."};
    auto type = part.string("type");
    if (!part.error() && type != "text")
      part.fail("type", "only \"text\" parts are supported, got "
                          + (type ? "\"" + *type + "\"" : "none"));
    auto part_text = part.string("text");
    part.reject_unknown();
    if (part.error()) {
      msg.adopt(part.error());
      return std::nullopt;
    }
    text += part_text.value_or("");
  }
  return text;
}

void read_messages(field_reader& fields, completion_params& out) {
  auto x = fields.find("messages");
  if (fields.error())
    return;
  if (x == nullptr || !x->is_array() || x->empty())
    return fields.fail("messages",
                       x == nullptr ? "missing (an array of {role, content})"
                                    : "expected a non-empty array of {role, "
                                      "content}, got "
                                        + json_excerpt(*x));
  for (size_t i = 0; i < x->size(); ++i) {
    field_reader msg{(*x)[i], "messages[" + std::to_string(i) + "]."};
    auto role = msg.string("role");
    if (!role && !msg.error())
      msg.fail("role", "missing (\"system\", \"user\" or \"assistant\")");
    auto content = message_content(msg);
    msg.ignore("name");
    msg.reject_unknown();
    if (msg.error()) {
      fields.adopt(msg.error());
      out.messages.clear();
      return;
    }
    // OpenAI's newer name for the system role.
    out.messages.push_back(
      {*role == "developer" ? "system" : *role, std::move(*content)});
  }
}

void read_stop(field_reader& fields, completion_params& out) {
  auto x = fields.find("stop");
  if (x == nullptr)
    return;
  auto add = [&](const nlohmann::json& s, const std::string& where) {
    if (!s.is_string() || s.get<std::string>().empty()) {
      fields.fail("stop", where + "expected a non-empty string, got "
                            + json_excerpt(s));
      return;
    }
    out.stop.push_back(s.get<std::string>());
  };
  if (!x->is_array())
    return add(*x, {});
  if (x->size() > max_stop_strings)
    return fields.fail("stop", std::to_string(x->size())
                                 + " strings; at most "
                                 + std::to_string(max_stop_strings));
  for (size_t i = 0; i < x->size() && !fields.error(); ++i)
    add((*x)[i], "element " + std::to_string(i) + ": ");
}

void read_sampling(field_reader& fields, completion_params& out) {
  if (auto v = fields.integer("max_tokens", 0, max_int32))
    out.max_tokens = static_cast<uint32_t>(*v);
  if (out.kind == api_kind::chat)
    if (auto v = fields.integer("max_completion_tokens", 0, max_int32))
      out.max_tokens = static_cast<uint32_t>(*v);
  if (auto v = fields.number("temperature", 0, 2))
    out.temperature = *v;
  if (auto v = fields.number("top_p", 0, 1)) {
    if (*v == 0)
      fields.fail("top_p", "expected a number in (0, 1], got 0 (use "
                           "temperature 0 for greedy decoding)");
    out.top_p = *v;
  }
  if (auto v = fields.integer("seed", std::numeric_limits<int64_t>::min(),
                              std::numeric_limits<int64_t>::max()))
    out.seed = static_cast<uint64_t>(*v);
  if (auto v = fields.integer("n", 1, max_sequences_per_request))
    out.n = static_cast<uint32_t>(*v);
  read_stop(fields, out);
  if (auto ids = fields.find("stop_token_ids")) {
    if (!ids->is_array())
      fields.fail("stop_token_ids", "expected an array of token ids, got "
                                      + json_kind(*ids));
    else if (auto parsed = token_ids(fields, "stop_token_ids", *ids, {}))
      out.stop_token_ids = std::move(*parsed);
  }
  out.ignore_eos = fields.boolean("ignore_eos").value_or(false);
}

void read_streaming(field_reader& fields, completion_params& out) {
  out.stream = fields.boolean("stream").value_or(false);
  auto opts = fields.find("stream_options");
  if (opts == nullptr)
    return;
  if (!out.stream)
    return fields.fail("stream_options", "only allowed with \"stream\": true");
  field_reader sub{*opts, "stream_options."};
  out.include_usage = sub.boolean("include_usage").value_or(false);
  sub.ignore("continuous_usage_stats");
  sub.reject_unknown();
  fields.adopt(sub.error());
}

void read_logprobs(field_reader& fields, completion_params& out) {
  if (out.kind == api_kind::completion) {
    if (auto v = fields.integer("logprobs", 0, max_top_logprobs))
      out.logprobs = static_cast<int32_t>(*v);
    out.echo = fields.boolean("echo").value_or(false);
    if (out.echo && out.logprobs)
      fields.fail("echo", "not supported together with logprobs (Volt does "
                          "not score the prompt's tokens)");
    return;
  }
  auto wanted = fields.boolean("logprobs").value_or(false);
  auto top = fields.integer("top_logprobs", 0, max_top_logprobs);
  if (top && !wanted)
    return fields.fail("top_logprobs", "needs \"logprobs\": true");
  if (wanted)
    out.logprobs = static_cast<int32_t>(top.value_or(0));
}

/// Fields of OpenAI's API that do not change what Volt computes, and those
/// it does not implement (accepted only with their neutral value).
void read_rest(field_reader& fields, api_kind kind) {
  for (auto name : {"user", "service_tier", "metadata", "store",
                    "parallel_tool_calls"})
    fields.ignore(name);
  fields.unsupported("frequency_penalty", 0);
  fields.unsupported("presence_penalty", 0);
  fields.unsupported("logit_bias", nlohmann::json::object());
  if (kind == api_kind::completion) {
    fields.unsupported("best_of", 1);
    fields.unsupported("suffix", "");
    return;
  }
  fields.unsupported("tools", nlohmann::json::array());
  fields.unsupported("tool_choice", "none");
  fields.unsupported("functions", nlohmann::json::array());
  fields.unsupported("function_call", "none");
  fields.unsupported("response_format", {{"type", "text"}});
}

} // namespace

std::optional<api_error> parse_completion(const nlohmann::json& body,
                                          api_kind kind,
                                          completion_params& out) {
  out = completion_params{};
  out.kind = kind;
  field_reader fields{body};
  if (auto model = fields.string("model"))
    out.model = *model;
  if (kind == api_kind::completion)
    read_prompts(fields, out);
  else
    read_messages(fields, out);
  read_sampling(fields, out);
  read_streaming(fields, out);
  read_logprobs(fields, out);
  read_rest(fields, kind);
  fields.reject_unknown();
  return fields.error();
}

std::optional<api_error> parse_body(const std::string& text,
                                    nlohmann::json& out) {
  // Printing a value (error messages quote one) recurses once per level, so
  // a body of a few MiB of '[' would overflow the stack of the thread serving
  // it. The limit is the checkpoint files' (model/json.hpp): no OpenAI
  // request nests nearly as deep.
  struct too_deep {};
  auto limit_depth = [](int depth, nlohmann::json::parse_event_t event,
                        nlohmann::json&) {
    if ((event == nlohmann::json::parse_event_t::object_start
         || event == nlohmann::json::parse_event_t::array_start)
        && depth >= static_cast<int>(volt::json::max_depth))
      throw too_deep{};
    return true;
  };
  try {
    out = nlohmann::json::parse(text, limit_depth);
    return std::nullopt;
  } catch (const too_deep&) {
    return bad_request({}, "request body: not valid JSON: nesting deeper than "
                             + std::to_string(volt::json::max_depth) + " levels");
  } catch (const nlohmann::json::exception& e) {
    // A syntax error (parse_error), or a number beyond double's range such as
    // 1E400 (out_of_range): "[json.exception.parse_error.101] parse error at
    // line 1, ...": the bracketed id means nothing to a client.
    std::string what = e.what();
    auto end = what.find("] ");
    if (what.rfind("[json.exception", 0) == 0 && end != std::string::npos)
      what = what.substr(end + 2);
    return bad_request({}, "request body: not valid JSON: " + what);
  }
}

} // namespace volt::http
