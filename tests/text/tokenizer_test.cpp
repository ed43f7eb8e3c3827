#define CAF_SUITE text.tokenizer

// The tokenizer against transformers' and sentencepiece's outputs for
// tiny-mixtral-text-a, how BOS/EOS are resolved from the JSON files, and the
// errors for missing, corrupt or inconsistent files.

#include "text/tokenizer.hpp"

#include <algorithm>

#include "tests/text/text_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

struct fixture {
  std::shared_ptr<const tokenizer> tok = text_tokenizer();
  temp_dir tmp;

  /// Loads a folder that must load.
  std::shared_ptr<const tokenizer> load(const std::string& dir) {
    auto t = tokenizer::load(dir);
    if (!t)
      CAF_FAIL(dir << ": " << describe(t.error()));
    return *t;
  }

  /// Writes a folder with the fixture's tokenizer.model and `files`, loads it.
  std::shared_ptr<const tokenizer> load_with(const std::string& name,
                                             std::vector<named_text> files) {
    return load(write_tokenizer_dir(tmp, name, files));
  }

  /// Expects loading `dir` to fail with invalid_checkpoint and exactly `what`.
  void expect_error(const std::string& dir, const std::string& what) {
    auto t = tokenizer::load(dir);
    if (t) {
      CAF_ERROR(dir << ": loaded but expected: " << what);
      return;
    }
    CAF_CHECK(t.error() == volt_errc::invalid_checkpoint);
    CAF_CHECK_EQUAL(describe(t.error()), what);
  }

  /// The decoding of `ids`, which must succeed.
  std::string decode(const std::vector<int32_t>& ids, bool skip = true) {
    auto text = tok->decode(ids, skip);
    if (!text)
      CAF_FAIL(show_ids(ids) << ": " << describe(text.error()));
    return *text;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(tokenizer_tests, fixture)

CAF_TEST(every tokenizer case encodes and decodes as the reference) {
  const auto& cases = load_text_reference().tokenizer_cases;
  CAF_REQUIRE_EQUAL(cases.size(), 26u);
  for (const auto& c : cases) {
    CAF_MESSAGE("case " << json::dump(json::value(c.text)));
    auto ids = tok->encode(c.text, false);
    CAF_CHECK_EQUAL(show_ids(ids), show_ids(c.ids));
    std::vector<std::string> pieces;
    for (auto id : c.ids)
      pieces.push_back(value_of(tok->piece(id)));
    CAF_CHECK(pieces == c.pieces);
    CAF_CHECK_EQUAL(decode(c.ids), c.decoded);
    // transformers adds BOS (and no EOS) for this tokenizer.
    auto with_bos = c.ids;
    with_bos.insert(with_bos.begin(), 1);
    CAF_CHECK_EQUAL(show_ids(tok->encode(c.text, true)), show_ids(with_bos));
  }
}

CAF_TEST(every prompt encodes to its input ids and its reply decodes) {
  const auto& cases = load_text_reference().cases;
  CAF_REQUIRE_EQUAL(cases.size(), 7u);
  for (const auto& c : cases) {
    CAF_MESSAGE("prompt " << json::dump(json::value(c.prompt)));
    CAF_CHECK_EQUAL(show_ids(tok->encode(c.prompt, true)),
                    show_ids(c.input_ids));
    CAF_CHECK_EQUAL(decode(c.greedy_new_tokens), c.greedy_text);
    CAF_CHECK_EQUAL(decode(c.input_ids), c.prompt);
  }
}

CAF_TEST(the special tokens and settings of the fixture) {
  CAF_CHECK_EQUAL(tok->vocab_size(), 1024);
  CAF_CHECK_EQUAL(tok->bos_id(), std::optional<int32_t>{1});
  CAF_CHECK(tok->eos_ids() == std::vector<int32_t>{2});
  CAF_CHECK(tok->add_bos());
  CAF_CHECK(!tok->add_eos());
  CAF_CHECK_EQUAL(tok->model_max_length(), std::optional<int64_t>{1024});
  CAF_CHECK(tok->chat_template().empty());
  CAF_CHECK(tok->is_special(0) && tok->is_special(1) && tok->is_special(2));
  CAF_CHECK(!tok->is_special(440));
  CAF_CHECK_EQUAL(tok->token_id("<s>"), std::optional<int32_t>{1});
  CAF_CHECK_EQUAL(tok->token_id("\xe2\x96\x81"
                                "def"),
                  std::optional<int32_t>{440});
  CAF_CHECK_EQUAL(tok->token_id("no such piece"), std::nullopt);
  CAF_CHECK_EQUAL(tok->byte_value(13), std::optional<uint8_t>{0x0A});
  CAF_CHECK_EQUAL(tok->byte_value(258), std::optional<uint8_t>{0xFF});
  CAF_CHECK_EQUAL(tok->byte_value(440), std::nullopt);
  CAF_CHECK_EQUAL(show_ids(tok->encode("", true)), "[1]");
  CAF_CHECK_EQUAL(show_ids(tok->encode("", false)), "[]");
}

CAF_TEST(the text of a special token is not that token) {
  for (const char* text : {"<s>", "</s>", "<unk>", "<s>not special</s>"}) {
    auto ids = tok->encode(text, true);
    CAF_CHECK_EQUAL(std::count(ids.begin(), ids.end(), 1), 1);
    CAF_CHECK_EQUAL(ids.front(), 1);
    CAF_CHECK_EQUAL(std::count(ids.begin(), ids.end(), 2), 0);
    CAF_CHECK_EQUAL(std::count(ids.begin(), ids.end(), 0), 0);
    CAF_CHECK_EQUAL(decode(ids), text);
  }
}

CAF_TEST(decoding with and without special tokens) {
  // "▁def" is 440; skipped tokens leave their neighbours one run.
  CAF_CHECK_EQUAL(decode({1, 440, 2}), "def");
  CAF_CHECK_EQUAL(decode({440, 2, 440}), "def def");
  CAF_CHECK_EQUAL(decode({0, 440}), "def");
  CAF_CHECK_EQUAL(decode({1, 440, 2}, false), "<s>def</s>");
  CAF_CHECK_EQUAL(decode({440, 2, 440}, false), "def</s>def");
  CAF_CHECK_EQUAL(decode({0}, false), "<unk>");
  CAF_CHECK_EQUAL(decode({}), "");
  // A lone leading "▁" is the dummy prefix; later ones are spaces.
  CAF_CHECK_EQUAL(decode({802, 440}), " def");
  CAF_CHECK_EQUAL(decode({440, 802, 440}), "def  def");
}

CAF_TEST(ids outside the vocabulary are errors) {
  for (int32_t bad : {1024, -1, 1 << 30}) {
    auto text = tok->decode({440, bad});
    CAF_REQUIRE(!text);
    CAF_CHECK(text.error() == volt_errc::invalid_request);
    CAF_CHECK_EQUAL(describe(text.error()),
                    "token id " + std::to_string(bad)
                      + " at position 1 is not in the vocabulary (ids 0 to "
                        "1023)");
    auto piece = tok->piece(bad);
    CAF_REQUIRE(!piece);
    CAF_CHECK_EQUAL(describe(piece.error()),
                    "token id " + std::to_string(bad)
                      + " is not in the vocabulary (ids 0 to 1023)");
    CAF_CHECK(!tok->contains(bad));
    CAF_CHECK(!tok->is_special(bad));
    CAF_CHECK_EQUAL(tok->byte_value(bad), std::nullopt);
  }
}

CAF_TEST(a folder without tokenizer.model) {
  CAF_CHECK(tokenizer::has_tokenizer(text_model_dir()));
  auto dir = tmp.subdir("no_tokenizer");
  write_text(dir + "/tokenizer_config.json", "{}");
  CAF_CHECK(!tokenizer::has_tokenizer(dir));
  auto t = tokenizer::load(dir);
  CAF_REQUIRE(!t);
  CAF_CHECK(t.error() == volt_errc::invalid_checkpoint);
  auto what = describe(t.error());
  CAF_CHECK_EQUAL(what.rfind(dir + "/tokenizer.model: ", 0), 0u);
}

CAF_TEST(a corrupt tokenizer.model) {
  auto dir = tmp.subdir("garbage");
  write_text(dir + "/tokenizer.model", "\x01\xff garbage, not a protobuf \xfe");
  CAF_CHECK(tokenizer::has_tokenizer(dir));
  expect_error(dir, dir
                      + "/tokenizer.model: not a valid sentencepiece model "
                        "(its protobuf does not parse)");
  // A cut-off file: the usual result of an interrupted download.
  auto model = read_text(text_model_dir() + "/tokenizer.model");
  write_text(dir + "/tokenizer.model", model.substr(0, model.size() / 2));
  expect_error(dir, dir
                      + "/tokenizer.model: not a valid sentencepiece model "
                        "(its protobuf does not parse)");
  write_text(dir + "/tokenizer.model", "");
  expect_error(dir, dir
                      + "/tokenizer.model: not a valid sentencepiece model "
                        "(unk is not defined)");
}

CAF_TEST(bad JSON beside the model) {
  auto dir = write_tokenizer_dir(
    tmp, "bad_json", {{"tokenizer_config.json", "{\"add_bos_token\": tru"}});
  auto t = tokenizer::load(dir);
  CAF_REQUIRE(!t);
  auto what = describe(t.error());
  CAF_CHECK_EQUAL(
    what.rfind(dir + "/tokenizer_config.json: not valid JSON: ", 0), 0u);
  CAF_CHECK_EQUAL(what.find('\n'), std::string::npos);
  // A number beyond a double is nlohmann's out_of_range, not a parse error.
  write_text(dir + "/tokenizer_config.json", "{\"model_max_length\": 1e400}");
  auto huge = tokenizer::load(dir);
  CAF_REQUIRE(!huge);
  CAF_CHECK_EQUAL(describe(huge.error()),
                  dir + "/tokenizer_config.json: not valid JSON: number "
                        "overflow parsing '1e400'");
  auto cfg = dir + "/tokenizer_config.json";
  auto gen = dir + "/generation_config.json";
  auto expect_file_error = [&](const std::string& file, const std::string& text,
                               const std::string& what) {
    write_text(dir + "/tokenizer_config.json", "{}");
    write_text(dir + "/" + file, text);
    expect_error(dir, what);
    std::remove((dir + "/" + file).c_str());
  };
  expect_file_error("tokenizer_config.json", "[1, 2]",
                    cfg + ": must hold a JSON object, got [1,2]");
  expect_file_error(
    "tokenizer_config.json", R"({"add_bos_token": "yes"})",
    cfg + ": key 'add_bos_token' must be true or false, got \"yes\"");
  expect_file_error(
    "tokenizer_config.json", R"({"eos_token": 2})",
    cfg
      + ": key 'eos_token' must be a string or an object with a string "
        "\"content\", got 2");
  expect_file_error(
    "tokenizer_config.json", R"({"bos_token": "<start>"})",
    cfg + ": key 'bos_token' is \"<start>\", which is not in the vocabulary");
  expect_file_error(
    "tokenizer_config.json", R"({"model_max_length": -5})",
    cfg + ": key 'model_max_length' must be a positive integer, got -5");
  expect_file_error("tokenizer_config.json",
                    R"({"added_tokens_decoder": {"x1": {"content": "a"}}})",
                    cfg + ": key 'added_tokens_decoder.x1' is not a token id");
  expect_file_error(
    "generation_config.json", R"({"eos_token_id": 1024})",
    gen
      + ": key 'eos_token_id' is 1024, not a token id of this tokenizer "
        "(it has 1024 ids)");
  expect_file_error(
    "generation_config.json", R"({"eos_token_id": [2, -3]})",
    gen
      + ": key 'eos_token_id' is -3, not a token id of this tokenizer "
        "(it has 1024 ids)");
  expect_file_error("generation_config.json", R"({"bos_token_id": [1]})",
                    gen + ": key 'bos_token_id' must be a token id, got [1]");
  expect_file_error(
    "config.json", R"({"eos_token_id": "2"})",
    dir
      + "/config.json: key 'eos_token_id' must be a token id or a "
        "non-empty list of token ids, got \"2\"");
}

CAF_TEST(BOS and EOS come from the first file that names them) {
  // Only the sentencepiece model: its own ids; BOS added by default.
  auto bare = load_with("bare", {});
  CAF_CHECK_EQUAL(bare->bos_id(), std::optional<int32_t>{1});
  CAF_CHECK(bare->eos_ids() == std::vector<int32_t>{2});
  CAF_CHECK(bare->add_bos() && !bare->add_eos());
  CAF_CHECK_EQUAL(bare->model_max_length(), std::nullopt);
  // config.json alone, then generation_config.json over it (ids picked so
  // that each source is told apart).
  auto model = load_with(
    "model", {{"config.json", R"({"bos_token_id": 4, "eos_token_id": 6})"}});
  CAF_CHECK_EQUAL(model->bos_id(), std::optional<int32_t>{4});
  CAF_CHECK(model->eos_ids() == std::vector<int32_t>{6});
  CAF_CHECK(model->is_special(4) && model->is_special(6));
  auto gen = load_with(
    "generation", {{"config.json", R"({"bos_token_id": 4, "eos_token_id": 6})"},
                   {"generation_config.json",
                    R"({"bos_token_id": 3, "eos_token_id": [7, 5]})"}});
  CAF_CHECK_EQUAL(gen->bos_id(), std::optional<int32_t>{3});
  CAF_CHECK(gen->eos_ids() == (std::vector<int32_t>{7, 5}));
  // tokenizer_config.json's token text wins; generation_config.json's other
  // stop ids still count.
  auto named = load_with(
    "named",
    {{"tokenizer_config.json",
      R"({"bos_token": {"content": "</s>", "lstrip": false}, "eos_token": "<s>",
          "add_eos_token": true, "model_max_length": 1000000000000000019884624838656})"},
     {"generation_config.json", R"({"eos_token_id": [7, 1]})"}});
  CAF_CHECK_EQUAL(named->bos_id(), std::optional<int32_t>{2});
  CAF_CHECK(named->eos_ids() == (std::vector<int32_t>{1, 7}));
  CAF_CHECK_EQUAL(show_ids(named->encode("def", true)), "[2, 440, 1]");
  CAF_CHECK_EQUAL(named->model_max_length(), std::nullopt);
  auto no_bos = load_with(
    "no_bos", {{"tokenizer_config.json", R"({"add_bos_token": false})"}});
  CAF_CHECK_EQUAL(show_ids(no_bos->encode("def", true)), "[440]");
}

CAF_TEST(added tokens extend the vocabulary) {
  auto t = load_with("added", {{"tokenizer_config.json",
                                R"({"added_tokens_decoder": {
            "1": {"content": "<s>", "special": true},
            "1024": {"content": "<|im_start|>", "special": true},
            "1025": {"content": "<|im_end|>", "special": true},
            "1027": {"content": "<extra>", "special": false}}})"}});
  CAF_CHECK_EQUAL(t->vocab_size(), 1028);
  CAF_CHECK_EQUAL(t->token_id("<|im_start|>"), std::optional<int32_t>{1024});
  CAF_CHECK_EQUAL(t->token_id("<extra>"), std::optional<int32_t>{1027});
  CAF_CHECK_EQUAL(value_of(t->piece(1025)), "<|im_end|>");
  CAF_CHECK(t->is_special(1024) && !t->is_special(1027));
  CAF_CHECK(!t->contains(1026));
  // Text never turns into an added token.
  CAF_CHECK_EQUAL(show_ids(t->encode("<|im_start|>", false)),
                  show_ids(tok->encode("<|im_start|>", false)));
  std::vector<int32_t> ids{1024, 440, 1027, 440, 1025};
  CAF_CHECK_EQUAL(value_of(t->decode(ids)), "def<extra>def");
  CAF_CHECK_EQUAL(value_of(t->decode(ids, false)),
                  "<|im_start|>def<extra>def<|im_end|>");
  auto gap = t->decode({1026});
  CAF_REQUIRE(!gap);
  CAF_CHECK_EQUAL(describe(gap.error()),
                  "token id 1026 at position 0 is not in the vocabulary (ids 0 "
                  "to 1027)");
}

CAF_TEST_FIXTURE_SCOPE_END
()
