#define CAF_SUITE model.model_config

#include "model/model_config.hpp"

#include <string>

#include "base/error.hpp"
#include "tests/model/checkpoint_writer.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

/// The fixture's config.json with `from` replaced by `to` (which must occur).
std::string fixture_config_with(const std::string& from,
                                const std::string& to) {
  auto text = test::read_text(test::tiny_mixtral_dir() + "/config.json");
  auto pos = text.find(from);
  if (pos == std::string::npos) {
    CAF_FAIL("fixture config.json lacks " << from);
  }
  return text.replace(pos, from.size(), to);
}

struct fixture {
  test::temp_dir tmp;

  caf::expected<model_config> read(const std::string& text) {
    test::write_text(tmp.file("config.json"), text);
    return read_model_config(tmp.path());
  }

  /// Expects reading `text` to fail with "<tmp>/config.json: <what>".
  void expect_error(const std::string& text, const std::string& what) {
    auto cfg = read(text);
    if (cfg) {
      CAF_ERROR("no error, expected: " << what);
      return;
    }
    CAF_CHECK(cfg.error() == volt_errc::invalid_checkpoint);
    CAF_CHECK_EQUAL(describe(cfg.error()),
                    tmp.file("config.json") + ": " + what);
  }
};

} // namespace

CAF_TEST(the fixture config) {
  auto cfg = read_model_config(test::tiny_mixtral_dir());
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->vocab_size, 320);
  CAF_CHECK_EQUAL(cfg->hidden_size, 64);
  CAF_CHECK_EQUAL(cfg->intermediate_size, 128);
  CAF_CHECK_EQUAL(cfg->num_hidden_layers, 2);
  CAF_CHECK_EQUAL(cfg->num_attention_heads, 4);
  CAF_CHECK_EQUAL(cfg->num_key_value_heads, 2);
  CAF_CHECK_EQUAL(cfg->head_dim, 16);
  CAF_CHECK_EQUAL(cfg->num_local_experts, 8);
  CAF_CHECK_EQUAL(cfg->num_experts_per_tok, 2);
  CAF_CHECK_EQUAL(cfg->max_position_embeddings, 1024);
  CAF_CHECK_EQUAL(cfg->rope_theta, 1e6);
  CAF_CHECK_EQUAL(cfg->rms_norm_eps, 1e-5);
  CAF_CHECK_EQUAL(cfg->tie_word_embeddings, false);
  CAF_CHECK_EQUAL(cfg->sliding_window, 0);
  CAF_CHECK_EQUAL(cfg->bos_token_id, 1);
  CAF_CHECK_EQUAL(cfg->eos_token_id, 2);
  CAF_CHECK_EQUAL(cfg->torch_dtype, "float32");
  // A trailing slash on the folder makes no difference.
  CAF_CHECK(read_model_config(test::tiny_mixtral_dir() + "/"));
}

CAF_TEST_FIXTURE_SCOPE(model_config_tests, fixture)

CAF_TEST(the newer transformers layout) {
  auto cfg = read(
    fixture_config_with("\"rope_theta\": 1000000.0,",
                        "\"rope_parameters\": {\"rope_theta\": 500000.0, "
                        "\"rope_type\": \"default\"}, \"head_dim\": null,"));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->rope_theta, 500000.0);
  CAF_CHECK_EQUAL(cfg->head_dim, 16);
  cfg = read(fixture_config_with("\"torch_dtype\": \"float32\"",
                                 "\"dtype\": \"bfloat16\""));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->torch_dtype, "bfloat16");
}

CAF_TEST(defaults for optional keys) {
  auto cfg
    = read(R"({"model_type": "mixtral", "vocab_size": 10, "hidden_size": 8,
                      "intermediate_size": 16, "num_hidden_layers": 1,
                      "num_attention_heads": 2, "num_local_experts": 4,
                      "num_experts_per_tok": 2, "eos_token_id": [7, 8], "sliding_window": 4096,
                      "tie_word_embeddings": true})");
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->num_key_value_heads, 2);
  CAF_CHECK_EQUAL(cfg->head_dim, 4);
  CAF_CHECK_EQUAL(cfg->max_position_embeddings, 131072);
  CAF_CHECK_EQUAL(cfg->rope_theta, 1e6);
  CAF_CHECK_EQUAL(cfg->rms_norm_eps, 1e-5);
  CAF_CHECK_EQUAL(cfg->bos_token_id, -1);
  CAF_CHECK_EQUAL(cfg->eos_token_id, 7);
  CAF_CHECK_EQUAL(cfg->sliding_window, 4096);
  CAF_CHECK_EQUAL(cfg->tie_word_embeddings, true);
  CAF_CHECK_EQUAL(cfg->torch_dtype, "");
  // Without model_type, architectures decide; with neither we accept.
  auto minimal = std::string{
    R"("vocab_size": 10, "hidden_size": 8, "intermediate_size": 16,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "num_local_experts": 4, "num_experts_per_tok": 2)"};
  CAF_CHECK(read("{" + minimal + "}"));
  CAF_CHECK(
    read(R"({"architectures": ["MixtralForCausalLM"], )" + minimal + "}"));
}

CAF_TEST(explicit head_dim) {
  auto cfg = read(fixture_config_with(
    "\"hidden_size\": 64,", "\"hidden_size\": 64, \"head_dim\": 32,"));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->head_dim, 32);
  // An explicit head_dim lifts the divisibility requirement on hidden_size.
  cfg = read(fixture_config_with("\"hidden_size\": 64,",
                                 "\"hidden_size\": 66, \"head_dim\": 8,"));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->head_dim, 8);
  CAF_CHECK_EQUAL(cfg->hidden_size, 66);
}

CAF_TEST(missing and mistyped keys) {
  expect_error(fixture_config_with("\"hidden_size\": 64,", ""),
               "missing key 'hidden_size'");
  expect_error(fixture_config_with("\"num_local_experts\": 8,",
                                   "\"num_local_experts\": null,"),
               "missing key 'num_local_experts'");
  expect_error(fixture_config_with("\"hidden_size\": 64,",
                                   "\"hidden_size\": \"64\","),
               "key 'hidden_size' must be a positive integer (at most "
               "2147483647), got \"64\"");
  expect_error(
    fixture_config_with("\"vocab_size\": 320", "\"vocab_size\": 0"),
    "key 'vocab_size' must be a positive integer (at most 2147483647), got 0");
  expect_error(
    fixture_config_with("\"num_hidden_layers\": 2,",
                        "\"num_hidden_layers\": 2.5,"),
    "key 'num_hidden_layers' must be a positive integer (at most 2147483647), "
    "got 2.5");
  expect_error(
    fixture_config_with("\"hidden_size\": 64,", "\"hidden_size\": 1e12,"),
    "key 'hidden_size' must be a positive integer (at most 2147483647), "
    "got 1000000000000.0");
  expect_error(fixture_config_with("\"rms_norm_eps\": 1e-05,",
                                   "\"rms_norm_eps\": \"x\","),
               "key 'rms_norm_eps' must be a positive number, got \"x\"");
  expect_error(fixture_config_with("\"rope_theta\": 1000000.0,",
                                   "\"rope_theta\": -1,"),
               "key 'rope_theta' must be a positive number, got -1");
  expect_error(fixture_config_with("\"tie_word_embeddings\": false",
                                   "\"tie_word_embeddings\": 0"),
               "key 'tie_word_embeddings' must be true or false, got 0");
  expect_error(
    fixture_config_with("\"sliding_window\": null", "\"sliding_window\": -5"),
    "key 'sliding_window' must be null or a non-negative integer, got -5");
  expect_error(
    fixture_config_with("\"bos_token_id\": 1", "\"bos_token_id\": \"<s>\""),
    "key 'bos_token_id' must be a non-negative integer, got \"<s>\"");
  expect_error(
    fixture_config_with("\"hidden_size\": 64,",
                        "\"hidden_size\": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
                        "16,17,18,19,20],"),
    "key 'hidden_size' must be a positive integer (at most 2147483647), "
    "got [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,...");
  expect_error("[]", "top level is a JSON array, not an object");
  // Past int64 a number is no integer, so no size check can wrap.
  expect_error(fixture_config_with("\"hidden_size\": 64,",
                                   "\"hidden_size\": 18446744073709551616,"),
               "key 'hidden_size' must be a positive integer (at most "
               "2147483647), got 1.8446744073709552e+19");
  expect_error(fixture_config_with("\"tie_word_embeddings\": false",
                                   "\"tie_word_embeddings\": \"false\""),
               "key 'tie_word_embeddings' must be true or false, got \"false\"");
  // Integral floats are integers, as Python writes them for float fields.
  auto cfg = read(
    fixture_config_with("\"hidden_size\": 64,", "\"hidden_size\": 64.0,"));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->hidden_size, 64);
}

CAF_TEST(a key given twice is an error naming it) {
  auto cfg = read(fixture_config_with("\"hidden_size\": 64,",
                                      "\"hidden_size\": 64, "
                                      "\"hidden_size\": 32,"));
  CAF_REQUIRE(!cfg);
  auto msg = describe(cfg.error());
  CAF_CHECK_EQUAL(msg.rfind(tmp.file("config.json") + ":", 0), 0u);
  CAF_CHECK_NOT_EQUAL(msg.find(": duplicate key \"hidden_size\" (byte "),
                      std::string::npos);
}

CAF_TEST(inconsistent sizes) {
  expect_error(fixture_config_with("\"num_attention_heads\": 4,",
                                   "\"num_attention_heads\": 5,"),
               "hidden_size 64 is not divisible by num_attention_heads 5 and "
               "head_dim is not "
               "given");
  expect_error(
    fixture_config_with("\"num_key_value_heads\": 2,",
                        "\"num_key_value_heads\": 3,"),
    "num_attention_heads 4 is not a multiple of num_key_value_heads 3");
  expect_error(fixture_config_with("\"num_experts_per_tok\": 2,",
                                   "\"num_experts_per_tok\": 9,"),
               "num_experts_per_tok 9 exceeds num_local_experts 8");
  expect_error(fixture_config_with("\"hidden_size\": 64,",
                                   "\"hidden_size\": 64, \"head_dim\": 15,"),
               "head_dim 15 must be even (RoPE rotates pairs)");
}

CAF_TEST(token ids outside the vocabulary are refused) {
  // An eos the model can never generate would never end a sequence.
  expect_error(fixture_config_with("\"eos_token_id\": 2",
                                   "\"eos_token_id\": 320"),
               "key 'eos_token_id': token id 320 is outside the vocabulary "
               "[0, 320) of vocab_size");
  expect_error(fixture_config_with("\"eos_token_id\": 2",
                                   "\"eos_token_id\": [2, 99999]"),
               "key 'eos_token_id': token id 99999 is outside the vocabulary "
               "[0, 320) of vocab_size");
  expect_error(fixture_config_with("\"bos_token_id\": 1",
                                   "\"bos_token_id\": 1000"),
               "key 'bos_token_id': token id 1000 is outside the vocabulary "
               "[0, 320) of vocab_size");
  auto ok = read(fixture_config_with("\"eos_token_id\": 2",
                                     "\"eos_token_id\": [319, 2]"));
  CAF_REQUIRE(ok);
  CAF_CHECK_EQUAL(ok->eos_token_id, 319);
}

CAF_TEST(activations other than silu are refused) {
  expect_error(fixture_config_with("\"hidden_act\": \"silu\"",
                                   "\"hidden_act\": \"gelu\""),
               "hidden_act \"gelu\" is not supported (the experts compute "
               "SwiGLU with \"silu\")");
  expect_error(fixture_config_with("\"hidden_act\": \"silu\"",
                                   "\"hidden_act\": 3"),
               "hidden_act 3 is not supported (the experts compute SwiGLU "
               "with \"silu\")");
  // Absent means silu, as in transformers' MixtralConfig.
  CAF_CHECK(read(fixture_config_with("\"hidden_act\": \"silu\",", "")));
}

CAF_TEST(rope scaling is refused) {
  expect_error(
    fixture_config_with("\"rope_theta\": 1000000.0,",
                        "\"rope_parameters\": {\"rope_type\": \"yarn\", "
                        "\"rope_theta\": 1e6, \"factor\": 4},"),
    "rope_parameters.rope_type \"yarn\" is not supported (only 'default')");
  expect_error(
    fixture_config_with("\"rope_theta\": 1000000.0,",
                        "\"rope_theta\": 1e6, \"rope_scaling\": "
                        "{\"type\": \"linear\", \"factor\": 2},"),
    "rope_scaling {\"type\":\"linear\",\"factor\":2} is not supported (only "
    "'default')");
  auto cfg
    = read(fixture_config_with("\"rope_theta\": 1000000.0,",
                               "\"rope_theta\": 1e4, \"rope_scaling\": null,"));
  CAF_REQUIRE(cfg);
  CAF_CHECK_EQUAL(cfg->rope_theta, 1e4);
}

CAF_TEST(other model types) {
  expect_error(fixture_config_with("\"model_type\": \"mixtral\"",
                                   "\"model_type\": \"llama\""),
               "model_type 'llama' is not supported (expected 'mixtral')");
  expect_error(fixture_config_with("\"model_type\": \"mixtral\"",
                                   "\"model_type\": 3"),
               "key 'model_type' must be a string, got 3");
  expect_error(
    fixture_config_with("\"model_type\": \"mixtral\",", "")
      .replace(fixture_config_with("\"model_type\": \"mixtral\",", "")
                 .find("MixtralForCausalLM"),
               18, "LlamaForCausalLM"),
    "architectures [\"LlamaForCausalLM\"] do not include MixtralForCausalLM");
}

CAF_TEST(missing or broken config.json) {
  auto cfg = read_model_config(tmp.path());
  CAF_REQUIRE(!cfg);
  CAF_CHECK_EQUAL(describe(cfg.error()),
                  tmp.file("config.json") + ": file does not exist");
  cfg = read_model_config("/nonexistent");
  CAF_REQUIRE(!cfg);
  CAF_CHECK_EQUAL(describe(cfg.error()),
                  "/nonexistent/config.json: file does not exist");
  cfg = read("{\"vocab_size\": 320,");
  CAF_REQUIRE(!cfg);
  CAF_CHECK_EQUAL(
    describe(cfg.error()),
    tmp.file("config.json")
      + ":1:20: syntax error while parsing object key - unexpected end of "
        "input; expected string literal (byte 19)");
}

CAF_TEST_FIXTURE_SCOPE_END
()
