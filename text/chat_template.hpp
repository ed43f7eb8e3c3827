#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "caf/expected.hpp"

#include "text/tokenizer.hpp"

namespace volt {

/// One message of a conversation, as the OpenAI chat API carries it.
struct chat_message {
  /// "system", "user" or "assistant".
  std::string role;
  /// The text; never parsed for special tokens or template markers.
  std::string content;
};

/// The prompt formats Volt renders itself (it runs no Jinja).
enum class chat_format {
  /// Mistral / Mixtral instruct, as Mixtral-8x7B-Instruct's template writes it:
  /// `<s>[INST] user [/INST] answer</s>[INST] user [/INST]`, the system message
  /// prepended to the first user message with a blank line.
  mistral,
  /// ChatML: `<|im_start|>role\ncontent<|im_end|>\n` per message; the
  /// generation prompt is `<|im_start|>assistant\n`. No BOS.
  chatml,
};

/// Returns "mistral" or "chatml".
const char* to_string(chat_format x);

/// Parses a format name as a config key gives it ("mistral", "chatml"); an
/// unknown name is an invalid_config error listing the known ones.
caf::expected<chat_format> parse_chat_format(std::string_view name);

/// Recognises a checkpoint's Jinja template by substrings only its format
/// writes ("[INST]", "<|im_start|>"); nullopt when it matches neither or both.
std::optional<chat_format> recognise_chat_format(std::string_view jinja);

/// Renders conversations into prompt token ids for one tokenizer.
///
/// The prompt is built piecewise rather than rendered to text and encoded, so
/// that message text can never turn into control tokens: BOS and EOS go in as
/// their ids, a ChatML marker as its id when the vocabulary has it as one
/// token (else as text, as transformers would encode it), and every stretch of
/// text between two such ids is encoded by tokenizer::encode without special
/// tokens (sentencepiece gives each stretch its leading "▁", as Mistral's own
/// reference tokenizer and llama.cpp do).
class chat_template {
public:
  /// Uses `format` for `tok`.
  chat_template(std::shared_ptr<const tokenizer> tok, chat_format format);

  /// Picks the format for `tok`: `name` when not empty (see
  /// parse_chat_format), else the one recognised from the checkpoint's
  /// chat_template. A checkpoint without a template, or with one Volt does
  /// not recognise, is an invalid_checkpoint error that says to name the
  /// format; completions do not need this and keep working.
  static caf::expected<chat_template>
  select(std::shared_ptr<const tokenizer> tok, std::string_view name = {});

  /// The format in use.
  chat_format format() const {
    return format_;
  }

  /// Checks `messages` and renders them into prompt ids; with
  /// `add_generation_prompt`, the prompt ends where the assistant's reply
  /// starts. Errors (invalid_request) name the message at fault: an unknown
  /// role, and for mistral a system message after the first, roles that do
  /// not alternate user/assistant, or no user message to answer last.
  caf::expected<std::vector<int32_t>>
  apply(const std::vector<chat_message>& messages,
        bool add_generation_prompt) const;

  /// The same prompt as text, special tokens spelled out ("<s>[INST] ..."),
  /// for logs and debugging; apply() is what a model should get.
  caf::expected<std::string> render(const std::vector<chat_message>& messages,
                                    bool add_generation_prompt) const;

private:
  class builder;

  caf::error build(const std::vector<chat_message>& messages,
                   bool add_generation_prompt, builder& out) const;
  caf::error build_mistral(const std::vector<chat_message>& messages,
                           bool add_generation_prompt, builder& out) const;
  void build_chatml(const std::vector<chat_message>& messages,
                    bool add_generation_prompt, builder& out) const;

  std::shared_ptr<const tokenizer> tok_;
  chat_format format_;
};

} // namespace volt
