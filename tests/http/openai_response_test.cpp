#define CAF_SUITE http.openai_response

// Rendering of OpenAI responses: the shape of whole completion and chat
// objects, stream chunks (the chat role on the first delta, usage null or
// last), server-sent event framing, and model text that is not UTF-8.

#include "http/openai_response.hpp"

#include "http/api_error.hpp"
#include "http/json_fields.hpp"

#include "tests/test_dsl.hpp"

using namespace volt::http;
using json = nlohmann::ordered_json;

namespace {

response_meta meta_of(api_kind kind) {
  auto meta = new_response_meta(kind, "tiny");
  meta.created = 1700000000;
  return meta;
}

choice_result choice(size_t index, std::string text, std::string reason) {
  choice_result c;
  c.index = index;
  c.text = std::move(text);
  c.finish_reason = std::move(reason);
  return c;
}

} // namespace

CAF_TEST(ids are fresh and name their kind) {
  auto a = new_response_meta(api_kind::completion, "m");
  auto b = new_response_meta(api_kind::completion, "m");
  CAF_CHECK(a.id.rfind("cmpl-", 0) == 0);
  CAF_CHECK_EQUAL(a.id.size(), 5u + 24u);
  CAF_CHECK_NOT_EQUAL(a.id, b.id);
  CAF_CHECK(new_response_meta(api_kind::chat, "m").id.rfind("chatcmpl-", 0)
            == 0);
}

CAF_TEST(a whole completion has text choices and usage) {
  auto body = completion_response(meta_of(api_kind::completion),
                                  {choice(0, "a", "length"),
                                   choice(1, "b", "stop")},
                                  {3, 4});
  CAF_CHECK_EQUAL(body["object"], "text_completion");
  CAF_CHECK_EQUAL(body["model"], "tiny");
  CAF_CHECK_EQUAL(body["created"], 1700000000);
  CAF_REQUIRE_EQUAL(body["choices"].size(), 2u);
  CAF_CHECK_EQUAL(body["choices"][1],
                  (json{{"index", 1},
                        {"text", "b"},
                        {"logprobs", nullptr},
                        {"finish_reason", "stop"}}));
  CAF_CHECK_EQUAL(body["usage"], (json{{"prompt_tokens", 3},
                                       {"completion_tokens", 4},
                                       {"total_tokens", 7}}));
}

CAF_TEST(a whole chat completion has an assistant message) {
  auto body = completion_response(meta_of(api_kind::chat),
                                  {choice(0, "hi", "stop")}, {1, 1});
  CAF_CHECK_EQUAL(body["object"], "chat.completion");
  CAF_CHECK_EQUAL(body["choices"][0]["message"],
                  (json{{"role", "assistant"}, {"content", "hi"}}));
  CAF_CHECK(!body["choices"][0].contains("text"));
}

CAF_TEST(chat chunks carry the role first then deltas) {
  auto meta = meta_of(api_kind::chat);
  auto first = choice_chunk(meta, choice(0, "", ""), true, false);
  CAF_CHECK_EQUAL(first["object"], "chat.completion.chunk");
  CAF_CHECK_EQUAL(first["choices"][0]["delta"],
                  (json{{"role", "assistant"}, {"content", ""}}));
  CAF_CHECK(first["choices"][0]["finish_reason"].is_null());
  CAF_CHECK(!first.contains("usage"));
  auto next = choice_chunk(meta, choice(0, "x", ""), false, true);
  CAF_CHECK_EQUAL(next["choices"][0]["delta"], (json{{"content", "x"}}));
  CAF_CHECK(next.contains("usage") && next["usage"].is_null());
  auto last = choice_chunk(meta, choice(0, "", "length"), false, false);
  CAF_CHECK_EQUAL(last["choices"][0]["delta"], json::object());
  CAF_CHECK_EQUAL(last["choices"][0]["finish_reason"], "length");
}

CAF_TEST(completion chunks and the usage chunk) {
  auto meta = meta_of(api_kind::completion);
  auto c = choice_chunk(meta, choice(2, " world", ""), true, false);
  CAF_CHECK_EQUAL(c["object"], "text_completion");
  CAF_CHECK_EQUAL(c["choices"][0]["index"], 2);
  CAF_CHECK_EQUAL(c["choices"][0]["text"], " world");
  auto u = usage_chunk(meta, {5, 6});
  CAF_CHECK_EQUAL(u["choices"], json::array());
  CAF_CHECK_EQUAL(u["usage"]["total_tokens"], 11);
  CAF_CHECK_EQUAL(u["id"], meta.id);
}

CAF_TEST(server sent events are data lines with a blank line after) {
  CAF_CHECK_EQUAL(sse_event({{"a", 1}}), "data: {\"a\":1}\n\n");
  CAF_CHECK_EQUAL(sse_done, "data: [DONE]\n\n");
  // Text with a newline stays on one data line (JSON escapes it).
  CAF_CHECK_EQUAL(sse_event(json("x\ny")), "data: \"x\\ny\"\n\n");
}

CAF_TEST(text that is not UTF-8 renders with replacement characters) {
  auto text = dump_json(json(std::string{"a\xe2\x82"}));
  CAF_CHECK_EQUAL(text, "\"a\xef\xbf\xbd\"");
}

CAF_TEST(errors render as the OpenAI error object) {
  auto body = to_json(bad_request("n", "n: expected an integer"));
  CAF_CHECK_EQUAL(body, (json{{"error",
                               {{"message", "n: expected an integer"},
                                {"type", "invalid_request_error"},
                                {"param", "n"},
                                {"code", nullptr}}}}));
}
