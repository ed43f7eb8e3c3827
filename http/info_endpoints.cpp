// GET /v1/models, /health and /metrics; POST /tokenize and /detokenize.

#include <sstream>

#include <httplib.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "base/error.hpp"
#include "http/endpoints.hpp"
#include "http/json_fields.hpp"

namespace volt::http {

namespace {

void reply_json(httplib::Response& res, const nlohmann::ordered_json& value) {
  res.set_content(dump_json(value), "application/json");
}

nlohmann::ordered_json model_card(const api_context& ctx) {
  return {{"id", ctx.model->name},
          {"object", "model"},
          {"created", ctx.started},
          {"owned_by", "volt"},
          {"root", ctx.model->dir},
          {"max_model_len", ctx.model->max_model_len}};
}

/// Answers a request that needs the tokenizer: once the model has one, the
/// body is JSON and a `model` field (if any) names the served model, calls
/// `answer` with the body's fields; `param` names the field that carries the
/// text, for the error of a model without a tokenizer.
template <class Answer>
void with_text_fields(const api_context& ctx, const httplib::Request& req,
                      httplib::Response& res, const char* param,
                      Answer answer) {
  if (!ctx.model->tok)
    return reply_error(res, bad_request(param, ctx.model->text_error));
  nlohmann::json body;
  if (auto err = parse_body(req.body, body))
    return reply_error(res, *err);
  field_reader fields{body};
  auto model = fields.string("model");
  if (model && *model != ctx.model->name)
    return reply_error(res, model_not_found(*model, ctx.model->name));
  answer(fields);
}

/// The ids of /tokenize's `prompt` or `messages`.
std::optional<std::vector<int32_t>>
tokenize_fields(const api_context& ctx, field_reader& fields) {
  const auto& m = *ctx.model;
  auto prompt = fields.string("prompt");
  auto messages = fields.find("messages");
  auto add_special = fields.boolean("add_special_tokens").value_or(true);
  auto add_generation_prompt
    = fields.boolean("add_generation_prompt").value_or(true);
  fields.reject_unknown();
  if (fields.error())
    return std::nullopt;
  if (prompt.has_value() == (messages != nullptr)) {
    fields.fail("prompt", "give either \"prompt\" (text) or \"messages\"");
    return std::nullopt;
  }
  if (prompt)
    return m.tok->encode(*prompt, add_special);
  if (!m.chat) {
    fields.fail("messages", m.chat_error);
    return std::nullopt;
  }
  completion_params chat;
  if (auto err = parse_completion({{"messages", *messages}}, api_kind::chat,
                                  chat)) {
    fields.adopt(err);
    return std::nullopt;
  }
  auto ids = m.chat->apply(chat.messages, add_generation_prompt);
  if (!ids) {
    fields.fail("messages", describe(ids.error()));
    return std::nullopt;
  }
  return std::move(*ids);
}

/// The token ids of /detokenize's `tokens`.
std::optional<std::vector<int32_t>> detokenize_ids(const api_context& ctx,
                                                   field_reader& fields) {
  auto tokens = fields.find("tokens");
  fields.reject_unknown();
  if (!fields.error() && (tokens == nullptr || !tokens->is_array()))
    fields.fail("tokens", "expected an array of token ids, got "
                            + (tokens ? json_kind(*tokens) : "none"));
  std::vector<int32_t> ids;
  for (size_t i = 0; !fields.error() && i < tokens->size(); ++i) {
    const auto& x = (*tokens)[i];
    if (!x.is_number_integer() || x.get<int64_t>() < 0
        || x.get<int64_t>() >= ctx.model->vocab_size)
      fields.fail("tokens", "element " + std::to_string(i)
                              + ": expected a token id in [0, "
                              + std::to_string(ctx.model->vocab_size)
                              + "), got " + json_excerpt(x));
    else
      ids.push_back(static_cast<int32_t>(x.get<int64_t>()));
  }
  if (fields.error())
    return std::nullopt;
  return ids;
}

} // namespace

void reply_error(httplib::Response& res, const api_error& err) {
  res.status = err.status;
  res.set_content(dump_json(to_json(err)), "application/json");
}

void serve_models(const api_context& ctx, const httplib::Request& req,
                  httplib::Response& res, bool one) {
  if (!one)
    return reply_json(res, {{"object", "list"},
                            {"data", nlohmann::ordered_json::array({model_card(ctx)})}});
  auto id = req.matches.size() > 1 ? req.matches[1].str() : std::string{};
  if (id != ctx.model->name)
    return reply_error(res, model_not_found(id, ctx.model->name));
  reply_json(res, model_card(ctx));
}

void serve_health(const api_context& ctx, httplib::Response& res) {
  if (!ctx.bridge->ready())
    return reply_error(res, unavailable("not ready: waiting for every expert "
                                        "of the model to have a live host",
                                        "not_ready"));
  reply_json(res, {{"status", "ok"}});
}

void serve_tokenize(const api_context& ctx, const httplib::Request& req,
                    httplib::Response& res) {
  with_text_fields(ctx, req, res, "prompt", [&](field_reader& fields) {
    auto ids = tokenize_fields(ctx, fields);
    if (!ids)
      return reply_error(res, *fields.error());
    reply_json(res, {{"tokens", *ids},
                     {"count", ids->size()},
                     {"max_model_len", ctx.model->max_model_len}});
  });
}

void serve_detokenize(const api_context& ctx, const httplib::Request& req,
                      httplib::Response& res) {
  with_text_fields(ctx, req, res, "tokens", [&](field_reader& fields) {
    auto ids = detokenize_ids(ctx, fields);
    if (!ids)
      return reply_error(res, *fields.error());
    auto text = ctx.model->tok->decode(*ids);
    if (!text)
      return reply_error(res, bad_request("tokens", "tokens: "
                                                      + describe(text.error())));
    reply_json(res, {{"prompt", *text}});
  });
}

void serve_metrics(const api_context& ctx, httplib::Response& res) {
  if (!ctx.metrics)
    return reply_error(res, {404, "this node keeps no metrics",
                             "invalid_request_error", {}, {}});
  std::ostringstream out;
  prometheus::TextSerializer{}.Serialize(out, ctx.metrics->registry()->Collect());
  res.set_content(out.str(), "text/plain; version=0.0.4; charset=utf-8");
}

} // namespace volt::http
