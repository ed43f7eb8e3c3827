#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "caf/expected.hpp"

namespace volt {

/// A token named by its text in tokenizer_config.json (bos_token, eos_token).
struct named_token {
  /// "<path>: key 'bos_token'", for error messages.
  std::string source;
  /// The token's text, e.g. "<s>".
  std::string text;
};

/// Token ids under one key of a JSON file (eos_token_id may list several).
struct token_id_list {
  /// "<path>: key 'eos_token_id'", for error messages.
  std::string source;
  /// The ids in file order, not yet checked against the vocabulary.
  std::vector<int64_t> ids;
};

/// A token that tokenizer_config.json's added_tokens_decoder declares.
struct added_token {
  /// Its id; ids past the sentencepiece model extend the vocabulary.
  int64_t id = 0;
  /// The text that stands for it, e.g. "<|im_start|>".
  std::string content;
  /// Whether decoding with skip_special_tokens drops it.
  bool special = false;
};

/// What the JSON files beside tokenizer.model say: tokenizer_config.json,
/// generation_config.json and config.json, each optional. Tokens stay
/// unresolved here; the tokenizer checks them against its vocabulary.
struct tokenizer_config {
  /// add_bos_token of tokenizer_config.json; nullopt when not given.
  std::optional<bool> add_bos;
  /// add_eos_token of tokenizer_config.json. Default: false.
  bool add_eos = false;
  /// "<path>: key 'add_bos_token'" or "... 'add_eos_token'" when given, for
  /// errors about a token that must be added but does not exist.
  std::string add_bos_source;
  std::string add_eos_source;
  /// bos_token / eos_token of tokenizer_config.json (a string or an object
  /// with "content"); nullopt when absent or null.
  std::optional<named_token> bos_token;
  std::optional<named_token> eos_token;
  /// bos_token_id / eos_token_id of generation_config.json.
  std::optional<token_id_list> generation_bos;
  std::optional<token_id_list> generation_eos;
  /// bos_token_id / eos_token_id of config.json.
  std::optional<token_id_list> model_bos;
  std::optional<token_id_list> model_eos;
  /// model_max_length of tokenizer_config.json; nullopt when absent or 1e18
  /// and above (transformers writes int(1e30) for a tokenizer without a
  /// length limit).
  std::optional<int64_t> model_max_length;
  /// The Jinja chat template (tokenizer_config.json's chat_template, its
  /// "default" entry when it is a list, else chat_template.jinja); empty when
  /// there is none.
  std::string chat_template;
  /// Where chat_template came from, for error messages.
  std::string chat_template_source;
  /// added_tokens_decoder of tokenizer_config.json, in file order.
  std::vector<added_token> added_tokens;
};

/// Reads the optional JSON files of `dir`. A file that is missing is skipped;
/// one that is not JSON, or a key of the wrong type, is an invalid_checkpoint
/// error naming the file and key.
caf::expected<tokenizer_config> read_tokenizer_config(const std::string& dir);

} // namespace volt
