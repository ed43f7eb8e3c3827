#define CAF_SUITE http.openai_request

// OpenAI request JSON to Volt's terms: every accepted form of each field,
// the defaults, and one-line errors that name the field (param) for bad
// input, unknown fields and OpenAI features Volt does not implement.

#include "http/openai_request.hpp"

#include <nlohmann/json.hpp>

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::http;
using nlohmann::json;

namespace {

completion_params parse_ok(const json& body, api_kind kind) {
  completion_params out;
  auto err = parse_completion(body, kind, out);
  if (err)
    CAF_FAIL("unexpected error for " << body.dump() << ": " << err->message);
  return out;
}

/// The error for `body`; fails the test when there is none.
api_error parse_error(const json& body, api_kind kind = api_kind::completion) {
  completion_params out;
  auto err = parse_completion(body, kind, out);
  if (!err)
    CAF_FAIL("no error for " << body.dump());
  return *err;
}

} // namespace

CAF_TEST(a minimal completion takes OpenAI defaults) {
  auto p = parse_ok({{"model", "m"}, {"prompt", "hello"}},
                    api_kind::completion);
  CAF_CHECK_EQUAL(p.model, "m");
  CAF_REQUIRE_EQUAL(p.prompts.size(), 1u);
  CAF_CHECK_EQUAL(p.prompts[0].text, "hello");
  CAF_CHECK(!p.prompts[0].ids);
  CAF_CHECK(!p.max_tokens);
  CAF_CHECK_EQUAL(p.temperature, 1.0);
  CAF_CHECK_EQUAL(p.top_p, 1.0);
  CAF_CHECK(!p.seed);
  CAF_CHECK_EQUAL(p.n, 1u);
  CAF_CHECK(!p.stream);
  CAF_CHECK(!p.logprobs);
  CAF_CHECK(!p.echo);
}

CAF_TEST(prompts come as text or token ids or batches of either) {
  auto ids = parse_ok({{"prompt", {1, 2, 3}}}, api_kind::completion);
  CAF_REQUIRE_EQUAL(ids.prompts.size(), 1u);
  CAF_CHECK_EQUAL(*ids.prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
  auto batch = parse_ok({{"prompt", {"a", "b"}}}, api_kind::completion);
  CAF_CHECK_EQUAL(batch.prompts.size(), 2u);
  auto id_batch = parse_ok({{"prompt", {{1, 2}, {3}}}}, api_kind::completion);
  CAF_REQUIRE_EQUAL(id_batch.prompts.size(), 2u);
  CAF_CHECK_EQUAL(*id_batch.prompts[1].ids, (std::vector<int32_t>{3}));
  auto mixed = parse_ok({{"prompt", json::array({"a", {5}})}},
                        api_kind::completion);
  CAF_CHECK_EQUAL(mixed.prompts.size(), 2u);
}

CAF_TEST(bad prompts name the field) {
  auto missing = parse_error(json::object());
  CAF_CHECK_EQUAL(missing.status, 400);
  CAF_CHECK_EQUAL(missing.param, "prompt");
  CAF_CHECK_EQUAL(missing.message,
                  "prompt: missing (a string or an array of token ids)");
  CAF_CHECK_EQUAL(parse_error({{"prompt", json::array()}}).param, "prompt");
  CAF_CHECK_EQUAL(parse_error({{"prompt", 5}}).param, "prompt");
  auto negative = parse_error({{"prompt", {1, -2}}});
  CAF_CHECK_EQUAL(negative.message, "prompt: element 1: expected a token id "
                                    "(an integer >= 0), got -2");
  auto nested = parse_error({{"prompt", {{1}, json::array()}}});
  CAF_CHECK_EQUAL(nested.message, "prompt: element 1: expected a string or a "
                                  "non-empty array of token ids, got []");
}

CAF_TEST(sampling fields are read and range checked) {
  auto p = parse_ok({{"prompt", "x"},
                     {"max_tokens", 7},
                     {"temperature", 0},
                     {"top_p", 0.5},
                     {"seed", -1},
                     {"n", 3},
                     {"stop", "\n"},
                     {"ignore_eos", true}},
                    api_kind::completion);
  CAF_CHECK_EQUAL(*p.max_tokens, 7u);
  CAF_CHECK_EQUAL(p.temperature, 0.0);
  CAF_CHECK_EQUAL(p.top_p, 0.5);
  CAF_CHECK_EQUAL(*p.seed, static_cast<uint64_t>(-1));
  CAF_CHECK_EQUAL(p.n, 3u);
  CAF_CHECK_EQUAL(p.stop, std::vector<std::string>{"\n"});
  CAF_CHECK(p.ignore_eos);
  // Integral floats are integers (JavaScript has no other kind).
  CAF_CHECK(parse_ok({{"prompt", "x"}, {"max_tokens", 4.0}},
                     api_kind::completion)
              .max_tokens
            == 4u);
  auto hot = parse_error({{"prompt", "x"}, {"temperature", 3}});
  CAF_CHECK_EQUAL(hot.param, "temperature");
  CAF_CHECK_EQUAL(hot.message,
                  "temperature: expected a number in [0, 2], got 3");
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"top_p", 0}}).param, "top_p");
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"n", 0}}).message,
                  "n: expected an integer in [1, 64], got 0");
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"max_tokens", 1.5}}).message,
                  "max_tokens: expected an integer in [0, 2147483647], got "
                  "1.5");
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"max_tokens", "9"}}).param,
                  "max_tokens");
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"stop", {"a", ""}}}).message,
                  "stop: element 1: expected a non-empty string, got \"\"");
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"stream", 1}}).message,
                  "stream: expected true or false, got an integer");
}

CAF_TEST(null fields count as left out) {
  auto p = parse_ok({{"prompt", "x"},
                     {"max_tokens", nullptr},
                     {"stop", nullptr},
                     {"logprobs", nullptr}},
                    api_kind::completion);
  CAF_CHECK(!p.max_tokens);
  CAF_CHECK(p.stop.empty());
  CAF_CHECK(!p.logprobs);
}

CAF_TEST(streaming options need stream) {
  auto p = parse_ok({{"prompt", "x"},
                     {"stream", true},
                     {"stream_options", {{"include_usage", true}}}},
                    api_kind::completion);
  CAF_CHECK(p.stream);
  CAF_CHECK(p.include_usage);
  CAF_CHECK_EQUAL(
    parse_error({{"prompt", "x"}, {"stream_options", {{"include_usage", true}}}})
      .message,
    "stream_options: only allowed with \"stream\": true");
  auto typo = parse_error({{"prompt", "x"},
                           {"stream", true},
                           {"stream_options", {{"include_usag", true}}}});
  CAF_CHECK_EQUAL(typo.param, "stream_options.include_usag");
  CAF_CHECK_EQUAL(typo.message, "stream_options.include_usag: unknown field "
                                "(did you mean 'include_usage'?)");
}

CAF_TEST(a field name with a line break gives a one line message) {
  // Found by fuzz.openai_request: the name is quoted in the message.
  auto err = parse_error({{"prompt", "x"}, {"max_tok\nens", 3}});
  CAF_CHECK_EQUAL(err.message.find('\n'), std::string::npos);
  CAF_CHECK_NOT_EQUAL(err.message.find("max_tok\\nens"), std::string::npos);
}

CAF_TEST(logprobs differ between completions and chat) {
  CAF_CHECK(parse_ok({{"prompt", "x"}, {"logprobs", 3}}, api_kind::completion)
              .logprobs
            == 3);
  CAF_CHECK_EQUAL(parse_error({{"prompt", "x"}, {"logprobs", 21}}).param,
                  "logprobs");
  CAF_CHECK_EQUAL(
    parse_error({{"prompt", "x"}, {"logprobs", 1}, {"echo", true}}).param,
    "echo");
  json chat{{"messages", {{{"role", "user"}, {"content", "hi"}}}}};
  auto with = chat;
  with["logprobs"] = true;
  with["top_logprobs"] = 2;
  CAF_CHECK(parse_ok(with, api_kind::chat).logprobs == 2);
  with.erase("top_logprobs");
  CAF_CHECK(parse_ok(with, api_kind::chat).logprobs == 0);
  auto lonely = chat;
  lonely["top_logprobs"] = 2;
  CAF_CHECK_EQUAL(parse_error(lonely, api_kind::chat).message,
                  "top_logprobs: needs \"logprobs\": true");
  auto echo = chat;
  echo["echo"] = true;
  CAF_CHECK_EQUAL(parse_error(echo, api_kind::chat).message,
                  "echo: unknown field");
}

CAF_TEST(chat messages take string or text-part content) {
  json body{{"messages",
             {{{"role", "system"}, {"content", "be brief"}},
              {{"role", "user"},
               {"content",
                {{{"type", "text"}, {"text", "hel"}},
                 {{"type", "text"}, {"text", "lo"}}}}},
              {{"role", "assistant"}, {"content", nullptr}},
              {{"role", "developer"}, {"content", "x"}, {"name", "n"}}}},
            {"max_completion_tokens", 5}};
  auto p = parse_ok(body, api_kind::chat);
  CAF_REQUIRE_EQUAL(p.messages.size(), 4u);
  CAF_CHECK_EQUAL(p.messages[1].content, "hello");
  CAF_CHECK_EQUAL(p.messages[2].content, "");
  CAF_CHECK_EQUAL(p.messages[3].role, "system");
  CAF_CHECK_EQUAL(*p.max_tokens, 5u);
}

CAF_TEST(bad chat messages name the message) {
  CAF_CHECK_EQUAL(parse_error(json::object(), api_kind::chat).message,
                  "messages: missing (an array of {role, content})");
  auto no_role
    = parse_error({{"messages", {{{"content", "hi"}}}}}, api_kind::chat);
  CAF_CHECK_EQUAL(no_role.param, "messages[0].role");
  auto image = parse_error(
    {{"messages",
      {{{"role", "user"},
        {"content", {{{"type", "image_url"}, {"image_url", "x"}}}}}}}},
    api_kind::chat);
  CAF_CHECK_EQUAL(image.param, "messages[0].content[0].type");
  CAF_CHECK_EQUAL(image.message, "messages[0].content[0].type: only \"text\" "
                                 "parts are supported, got \"image_url\"");
  auto extra = parse_error(
    {{"messages", {{{"role", "user"}, {"content", "x"}, {"tool_calls", 1}}}}},
    api_kind::chat);
  CAF_CHECK_EQUAL(extra.param, "messages[0].tool_calls");
}

CAF_TEST(unknown fields are errors with a suggestion) {
  auto typo = parse_error({{"prompt", "x"}, {"max_token", 5}});
  CAF_CHECK_EQUAL(typo.param, "max_token");
  CAF_CHECK_EQUAL(typo.message,
                  "max_token: unknown field (did you mean 'max_tokens'?)");
}

CAF_TEST(unimplemented OpenAI features are refused unless neutral) {
  parse_ok({{"prompt", "x"},
            {"presence_penalty", 0},
            {"frequency_penalty", 0.0},
            {"logit_bias", json::object()},
            {"user", "me"},
            {"best_of", 1}},
           api_kind::completion);
  auto penalty = parse_error({{"prompt", "x"}, {"presence_penalty", 0.5}});
  CAF_CHECK_EQUAL(penalty.param, "presence_penalty");
  CAF_CHECK_EQUAL(penalty.message, "presence_penalty: not supported by Volt "
                                   "(leave it out, or send 0)");
  json chat{{"messages", {{{"role", "user"}, {"content", "hi"}}}},
            {"tools", {{{"type", "function"}}}}};
  CAF_CHECK_EQUAL(parse_error(chat, api_kind::chat).param, "tools");
}

CAF_TEST(bodies that are not JSON objects are 400s) {
  json out;
  auto bad = parse_body("{\"prompt\": ", out);
  CAF_REQUIRE(bad);
  CAF_CHECK_EQUAL(bad->status, 400);
  CAF_CHECK(bad->message.rfind("request body: not valid JSON: parse error at "
                               "line 1, column 12",
                               0)
            == 0);
  CAF_CHECK(!parse_body("[1]", out));
  CAF_CHECK_EQUAL(parse_error(out).message,
                  "request body: expected a JSON object, got an array");
}

CAF_TEST(numbers beyond the range of a double are 400s) {
  // nlohmann reports them as out_of_range, not as a parse error: the
  // exception escaped and ended the process (found by fuzz_openai_request).
  json out;
  for (auto body : {R"({"prompt": [1, 2E5555555555555555]})",
                    R"({"prompt": "x", "max_tokens": -1e400})",
                    R"({"prompt": "x", "temperature": 11.1E1007924})"}) {
    auto bad = parse_body(body, out);
    CAF_REQUIRE(bad);
    CAF_CHECK_EQUAL(bad->status, 400);
    CAF_CHECK_EQUAL(bad->message.rfind("request body: not valid JSON: number "
                                       "overflow parsing '",
                                       0),
                    0u);
    CAF_CHECK_EQUAL(bad->message.find('\n'), std::string::npos);
  }
}

CAF_TEST(bodies nested deeper than the JSON limit are 400s) {
  // Error messages quote the offending value, and printing it recurses once
  // per level: a body of a few MiB of '[' overflowed the stack of the thread
  // serving the request.
  json out;
  auto nested = [](size_t arrays) {
    return "{\"prompt\": " + std::string(arrays, '[') + std::string(arrays, ']')
           + "}";
  };
  auto bad = parse_body(nested(size_t{1} << 22), out);
  CAF_REQUIRE(bad);
  CAF_CHECK_EQUAL(bad->status, 400);
  CAF_CHECK_EQUAL(bad->message, "request body: not valid JSON: nesting deeper "
                                "than 256 levels");
  // The object and 255 arrays are 256 levels: the most allowed.
  CAF_CHECK(parse_body(nested(256), out));
  CAF_REQUIRE(!parse_body(nested(255), out));
  CAF_CHECK_EQUAL(parse_error(out).param, "prompt");
}
