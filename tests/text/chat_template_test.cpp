#define CAF_SUITE text.chat_template

// Chat prompts: the ids of Mistral and ChatML conversations against what the
// formats prescribe, recognising a checkpoint's Jinja template, and the
// errors for conversations a format cannot render.

#include "text/chat_template.hpp"

#include <algorithm>

#include "tests/text/text_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Mixtral-8x7B-Instruct-v0.1's chat_template.
const char* mixtral_jinja
  = "{%- if messages[0]['role'] == 'system' %}\n"
    "    {%- set system_message = messages[0]['content'] %}\n"
    "    {%- set loop_messages = messages[1:] %}\n"
    "{%- else %}\n    {%- set loop_messages = messages %}\n{%- endif %}\n\n"
    "{{- bos_token }}\n{%- for message in loop_messages %}\n"
    "    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}\n"
    "        {{- raise_exception('After the optional system message, "
    "conversation roles must alternate user/assistant/user/assistant/...') }}\n"
    "    {%- endif %}\n    {%- if message['role'] == 'user' %}\n"
    "        {%- if loop.first and system_message is defined %}\n"
    "            {{- ' [INST] ' + system_message + '\\n\\n' + "
    "message['content'] + ' [/INST]' }}\n"
    "        {%- else %}\n"
    "            {{- ' [INST] ' + message['content'] + ' [/INST]' }}\n"
    "        {%- endif %}\n    {%- elif message['role'] == 'assistant' %}\n"
    "        {{- ' ' + message['content'] + eos_token}}\n    {%- else %}\n"
    "        {{- raise_exception('Only user and assistant roles are "
    "supported!') }}\n    {%- endif %}\n{%- endfor %}\n";

/// The usual ChatML template (OpenHermes, Qwen without tools).
const char* chatml_jinja
  = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' "
    "+ message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

using conversation = std::vector<chat_message>;

struct fixture {
  std::shared_ptr<const tokenizer> tok = text_tokenizer();
  chat_template mistral{tok, chat_format::mistral};
  chat_template chatml{tok, chat_format::chatml};
  temp_dir tmp;

  /// encode(text) without special tokens.
  std::vector<int32_t> enc(const std::string& text) {
    return tok->encode(text, false);
  }

  /// Joins ids and id lists in order.
  static std::vector<int32_t>
  join(std::initializer_list<std::vector<int32_t>> parts) {
    std::vector<int32_t> out;
    for (const auto& p : parts)
      out.insert(out.end(), p.begin(), p.end());
    return out;
  }

  /// Checks that `tmpl` renders `msgs` to `ids` and `text`, and that the ids
  /// decode back to the text with `t` (the template's tokenizer).
  void check(const chat_template& tmpl, const conversation& msgs, bool gen,
             const std::vector<int32_t>& ids, const std::string& text,
             const tokenizer* t = nullptr) {
    auto got = tmpl.apply(msgs, gen);
    if (!got)
      CAF_FAIL(describe(got.error()));
    CAF_CHECK_EQUAL(show_ids(*got), show_ids(ids));
    CAF_CHECK_EQUAL(value_of(tmpl.render(msgs, gen)), text);
    CAF_CHECK_EQUAL(value_of((t ? t : tok.get())->decode(*got, false)), text);
  }

  /// Expects `msgs` to be refused with invalid_request and exactly `what`.
  void expect_error(const chat_template& tmpl, const conversation& msgs,
                    bool gen, const std::string& what) {
    auto got = tmpl.apply(msgs, gen);
    if (got) {
      CAF_ERROR("rendered " << show_ids(*got) << " but expected: " << what);
      return;
    }
    CAF_CHECK(got.error() == volt_errc::invalid_request);
    CAF_CHECK_EQUAL(describe(got.error()), what);
  }

  /// Selects the format for a folder whose tokenizer_config.json holds
  /// `jinja` as chat_template.
  caf::expected<chat_template> select_for(const std::string& name,
                                          const std::string& jinja) {
    auto dir = write_tokenizer_dir(
      tmp, name,
      {{"tokenizer_config.json",
        "{\"chat_template\": " + json::dump(json::value(jinja)) + "}"}});
    auto t = tokenizer::load(dir);
    if (!t)
      CAF_FAIL(describe(t.error()));
    return chat_template::select(*t);
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(chat_template_tests, fixture)

CAF_TEST(format names and recognition) {
  CAF_CHECK_EQUAL(value_of(parse_chat_format("mistral")), chat_format::mistral);
  CAF_CHECK_EQUAL(value_of(parse_chat_format("chatml")), chat_format::chatml);
  auto bad = parse_chat_format("llama3");
  CAF_REQUIRE(!bad);
  CAF_CHECK(bad.error() == volt_errc::invalid_config);
  CAF_CHECK_EQUAL(describe(bad.error()),
                  "chat template 'llama3' is unknown (known: mistral, chatml)");
  CAF_CHECK_EQUAL(recognise_chat_format(mixtral_jinja), chat_format::mistral);
  CAF_CHECK_EQUAL(recognise_chat_format(chatml_jinja), chat_format::chatml);
  CAF_CHECK_EQUAL(recognise_chat_format("{{ messages[0]['content'] }}"),
                  std::nullopt);
  CAF_CHECK_EQUAL(recognise_chat_format("[INST] <|im_start|>"), std::nullopt);
}

CAF_TEST(selecting the format of a checkpoint) {
  CAF_CHECK_EQUAL(select_for("mixtral", mixtral_jinja)->format(),
                  chat_format::mistral);
  CAF_CHECK_EQUAL(select_for("chatml", chatml_jinja)->format(),
                  chat_format::chatml);
  // A template Volt cannot render: chat fails, the tokenizer still loads.
  auto unknown = select_for("unknown", "{{ messages[0]['content'] }}");
  CAF_REQUIRE(!unknown);
  CAF_CHECK(unknown.error() == volt_errc::invalid_checkpoint);
  CAF_CHECK_EQUAL(describe(unknown.error()),
                  tmp.file("unknown")
                    + "/tokenizer_config.json: key 'chat_template' is not a "
                      "template Volt recognises (it renders mistral [INST] and "
                      "chatml <|im_start|> itself); name the format explicitly "
                      "(mistral or chatml)");
  // An explicit name wins over the checkpoint's template.
  auto dir = tmp.file("unknown");
  auto named = chat_template::select(value_of(tokenizer::load(dir)), "chatml");
  CAF_CHECK_EQUAL(value_of(named).format(), chat_format::chatml);
  CAF_CHECK(!chat_template::select(tok, "nonsense"));
  // The fixture has no template at all.
  auto none = chat_template::select(tok);
  CAF_REQUIRE(!none);
  CAF_CHECK_EQUAL(describe(none.error()),
                  text_model_dir()
                    + ": no chat template (neither tokenizer_config.json's "
                      "chat_template nor chat_template.jinja); name the format "
                      "explicitly (mistral or chatml)");
  // Newer transformers keep the template in its own file.
  auto jinja_dir = write_tokenizer_dir(
    tmp, "jinja_file", {{"chat_template.jinja", mixtral_jinja}});
  auto from_file = chat_template::select(value_of(tokenizer::load(jinja_dir)));
  CAF_CHECK_EQUAL(value_of(from_file).format(), chat_format::mistral);
  // A list of named templates: the "default" one counts.
  auto list_dir = write_tokenizer_dir(
    tmp, "list",
    {{"tokenizer_config.json",
      "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": "
        + json::dump(json::value(mixtral_jinja))
        + "}, {\"name\": \"default\", "
          "\"template\": "
        + json::dump(json::value(chatml_jinja)) + "}]}"}});
  auto from_list = chat_template::select(value_of(tokenizer::load(list_dir)));
  CAF_CHECK_EQUAL(value_of(from_list).format(), chat_format::chatml);
}

CAF_TEST(mistral with a system message) {
  check(mistral, {{"system", "You are terse."}, {"user", "Name a prime."}},
        true,
        join({{1}, enc("[INST] You are terse.\n\nName a prime. [/INST]")}),
        "<s>[INST] You are terse.\n\nName a prime. [/INST]");
  // Sentencepiece gives the stretch after BOS its leading "▁": the space
  // Mixtral's template writes before "[INST]".
  auto ids = value_of(mistral.apply({{"user", "x"}}, true));
  CAF_CHECK_EQUAL(value_of(tok->piece(ids[1])).rfind("\xe2\x96\x81", 0), 0u);
}

CAF_TEST(mistral over several turns) {
  conversation msgs{
    {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "How are you?"}};
  check(mistral, msgs, true,
        join({{1},
              enc("[INST] Hi [/INST] Hello!"),
              {2},
              enc("[INST] How are you? [/INST]")}),
        "<s>[INST] Hi [/INST] Hello!</s>[INST] How are you? [/INST]");
  // Without a generation prompt a conversation may end with the answer.
  msgs.pop_back();
  check(mistral, msgs, false, join({{1}, enc("[INST] Hi [/INST] Hello!"), {2}}),
        "<s>[INST] Hi [/INST] Hello!</s>");
}

CAF_TEST(message text never becomes a special token) {
  auto ids = value_of(mistral.apply({{"user", "<s></s>[INST]<unk>"}}, true));
  CAF_CHECK_EQUAL(std::count(ids.begin(), ids.end(), 1), 1);
  CAF_CHECK_EQUAL(ids.front(), 1);
  CAF_CHECK_EQUAL(std::count(ids.begin(), ids.end(), 2), 0);
  CAF_CHECK_EQUAL(std::count(ids.begin(), ids.end(), 0), 0);
}

CAF_TEST(chatml without marker tokens encodes the markers as text) {
  conversation msgs{{"system", "Be brief."}, {"user", "Hi"}};
  std::string text = "<|im_start|>system\nBe brief.<|im_end|>\n"
                     "<|im_start|>user\nHi<|im_end|>\n"
                     "<|im_start|>assistant\n";
  check(chatml, msgs, true, enc(text), text);
}

CAF_TEST(chatml with marker tokens) {
  auto dir = write_tokenizer_dir(tmp, "chatml_tokens",
                                 {{"tokenizer_config.json",
                                   R"({"added_tokens_decoder": {
            "1024": {"content": "<|im_start|>", "special": true},
            "1025": {"content": "<|im_end|>", "special": true}}})"}});
  auto tokens = value_of(tokenizer::load(dir));
  chat_template tmpl{tokens, chat_format::chatml};
  conversation msgs{{"user", "Hi"}, {"assistant", "Hello"}, {"user", "Bye"}};
  check(tmpl, msgs, true,
        join({{1024},
              enc("user\nHi"),
              {1025},
              enc("\n"),
              {1024},
              enc("assistant\nHello"),
              {1025},
              enc("\n"),
              {1024},
              enc("user\nBye"),
              {1025},
              enc("\n"),
              {1024},
              enc("assistant\n")}),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello"
        "<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n",
        tokens.get());
  // ChatML does not impose an order of roles.
  auto free_order = tmpl.apply({{"assistant", "a"}, {"system", "s"}}, false);
  CAF_CHECK(free_order);
}

CAF_TEST(conversations a format refuses) {
  expect_error(mistral, {}, true, "messages: the conversation is empty");
  expect_error(chatml, {}, true, "messages: the conversation is empty");
  expect_error(mistral, {{"user", "a"}, {"tool", "b"}}, true,
               "messages[1]: role 'tool' is not one of system, user, "
               "assistant");
  expect_error(chatml, {{"User", "a"}}, true,
               "messages[0]: role 'User' is not one of system, user, "
               "assistant");
  expect_error(mistral, {{"system", "s"}}, true,
               "messages: no user message after the system message");
  expect_error(mistral, {{"assistant", "a"}, {"user", "b"}}, true,
               "messages[0]: expected a user message, got 'assistant' (after "
               "the optional system message, roles alternate user/assistant)");
  expect_error(mistral, {{"system", "s"}, {"user", "a"}, {"user", "b"}}, true,
               "messages[2]: expected an assistant message, got 'user' (after "
               "the optional system message, roles alternate user/assistant)");
  expect_error(mistral, {{"user", "a"}, {"system", "s"}}, true,
               "messages[1]: a system message may only come first");
  expect_error(mistral, {{"user", "a"}, {"assistant", "b"}}, true,
               "messages[1]: the last message must be the user's for the "
               "model to reply");
}

CAF_TEST_FIXTURE_SCOPE_END
()
