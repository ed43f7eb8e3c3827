#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "caf/expected.hpp"

namespace sentencepiece {
class SentencePieceProcessor;
} // namespace sentencepiece

namespace volt {

struct tokenizer_config;

/// A checkpoint's tokenizer: the sentencepiece model `tokenizer.model` (as
/// Mixtral ships it) plus the special-token settings of the JSON files beside
/// it. Encodes and decodes like transformers' LlamaTokenizer (sentencepiece
/// based, legacy behaviour). Immutable once loaded, so one instance serves
/// every thread.
///
/// Special tokens are never parsed out of text: encoding the text "<s>" yields
/// the pieces of "<s>", not the BOS id. Code that needs a special token in a
/// prompt (BOS, a chat template's markers) inserts its id.
///
/// BOS and EOS come from the first of these that names them:
/// tokenizer_config.json (bos_token / eos_token, as text),
/// generation_config.json (bos_token_id / eos_token_id), config.json (the same
/// keys), the sentencepiece model's own ids. eos_ids() then also lists every
/// further id of generation_config.json's eos_token_id, since that key is where
/// a model names all of its stop tokens.
class tokenizer {
public:
  ~tokenizer();

  /// True when `model_dir` has a `tokenizer.model`. A folder without one still
  /// serves token ids; only text input and output are unavailable.
  static bool has_tokenizer(const std::string& model_dir);

  /// Loads `<model_dir>/tokenizer.model` and the optional
  /// tokenizer_config.json, generation_config.json, config.json and
  /// chat_template.jinja. Errors (invalid_checkpoint) name the file and key: a
  /// missing or corrupt model, bad JSON, a special token that is not in the
  /// vocabulary.
  static caf::expected<std::shared_ptr<const tokenizer>>
  load(const std::string& model_dir);

  /// Splits `text` into token ids. With `add_special_tokens`, prepends BOS and
  /// appends EOS where add_bos_token / add_eos_token ask for them (as
  /// transformers does). Bytes that are not UTF-8 encode as U+FFFD, as
  /// sentencepiece treats them.
  std::vector<int32_t> encode(std::string_view text,
                              bool add_special_tokens) const;

  /// Turns `ids` back into text. With `skip_special_tokens`, special tokens
  /// (BOS, EOS, <unk>, control pieces, added tokens marked special) are
  /// dropped as if absent. Without it, each special token appears as its text
  /// and the text between two of them decodes on its own (sentencepiece drops
  /// the leading space of each such run). Errors (invalid_request) on an id
  /// outside the vocabulary, naming it and its position.
  caf::expected<std::string> decode(const std::vector<int32_t>& ids,
                                    bool skip_special_tokens = true) const;

  /// The piece of `id` as the vocabulary spells it ("▁the", "<0x0A>", "<s>").
  caf::expected<std::string> piece(int32_t id) const;

  /// The id whose piece or added token is exactly `text`, if any.
  std::optional<int32_t> token_id(std::string_view text) const;

  /// The BOS id, if the tokenizer has one.
  std::optional<int32_t> bos_id() const {
    return bos_id_;
  }

  /// The ids that end a generation; the first is the EOS that encode adds.
  /// Empty when the tokenizer names none.
  const std::vector<int32_t>& eos_ids() const {
    return eos_ids_;
  }

  /// Whether encode(text, true) prepends BOS.
  bool add_bos() const {
    return add_bos_;
  }

  /// Whether encode(text, true) appends EOS.
  bool add_eos() const {
    return add_eos_;
  }

  /// Number of ids: the sentencepiece pieces plus added tokens past them.
  int32_t vocab_size() const {
    return static_cast<int32_t>(kinds_.size());
  }

  /// tokenizer_config.json's model_max_length, when it gives a real limit.
  std::optional<int64_t> model_max_length() const {
    return model_max_length_;
  }

  /// The Jinja chat template of the checkpoint; empty when it has none.
  const std::string& chat_template() const {
    return chat_template_;
  }

  /// Where chat_template() came from ("<path>: key 'chat_template'" or the
  /// path of chat_template.jinja), for error messages.
  const std::string& chat_template_source() const {
    return chat_template_source_;
  }

  /// The folder as given to `load`.
  const std::string& dir() const {
    return dir_;
  }

  /// True when `id` is in the vocabulary.
  bool contains(int32_t id) const {
    return id >= 0 && id < vocab_size() && kinds_[id] != kind::gap;
  }

  /// True when skip_special_tokens drops `id`.
  bool is_special(int32_t id) const {
    return contains(id) && kinds_[id] == kind::special;
  }

  /// The byte that a byte-fallback piece ("<0xE2>") stands for, if `id` is one.
  std::optional<uint8_t> byte_value(int32_t id) const;

private:
  /// What decode does with an id.
  enum class kind : uint8_t {
    /// A sentencepiece piece that decodes with its neighbours.
    text,
    /// Dropped by skip_special_tokens, else written as its piece.
    special,
    /// An added token that is not special: always written as its content.
    added,
    /// An id between added tokens that names nothing.
    gap,
  };

  tokenizer();

  caf::error init(const std::string& model_dir, const tokenizer_config& cfg);
  caf::error init_kinds(const tokenizer_config& cfg);
  caf::error init_special_ids(const tokenizer_config& cfg);

  /// The text of an added or special token as decode writes it.
  std::string token_text(int32_t id) const;

  /// Appends sentencepiece's decoding of `run` to `out` and clears `run`.
  void flush_run(std::vector<int>& run, std::string& out) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  int32_t sp_size_ = 0;
  std::vector<kind> kinds_;
  /// Content of added tokens past the sentencepiece pieces, by id - sp_size_.
  std::vector<std::string> added_text_;
  std::optional<int32_t> bos_id_;
  std::vector<int32_t> eos_ids_;
  bool add_bos_ = false;
  bool add_eos_ = false;
  std::optional<int64_t> model_max_length_;
  std::string chat_template_;
  std::string chat_template_source_;
  std::string dir_;
};

} // namespace volt
