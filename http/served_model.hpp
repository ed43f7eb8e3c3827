#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "caf/expected.hpp"
#include "model/model_config.hpp"
#include "text/chat_template.hpp"
#include "text/tokenizer.hpp"

namespace volt::http {

/// What the API serves: the model's name and limits, its tokenizer and chat
/// template. Immutable once loaded; shared by every request thread.
struct served_model {
  /// The id in /v1/models and in responses.
  std::string name;
  /// The checkpoint folder.
  std::string dir;
  /// Prompt plus generated tokens at most (config.json's
  /// max_position_embeddings).
  int64_t max_model_len = 0;
  /// Token ids are in [0, vocab_size).
  int64_t vocab_size = 0;
  /// Null when the checkpoint has no tokenizer.model: the API then takes and
  /// returns token ids only.
  std::shared_ptr<const tokenizer> tok;
  /// The chat prompt format, when there is one.
  std::optional<chat_template> chat;
  /// Why the chat endpoint is off, naming what to change; empty when on.
  std::string chat_error;
  /// Why text input and output are off; empty with a tokenizer.
  std::string text_error;
};

/// Loads the tokenizer of `dir` when it has one and picks the chat format:
/// `chat_template_name` ([http] chat_template) when set, else the one
/// recognised in the checkpoint. `name` empty takes the folder's name. A
/// folder without a tokenizer, or a chat template Volt does not know, only
/// turns the text or chat endpoint off (with the reason in chat_error or
/// text_error); a tokenizer that fails to load is an error.
caf::expected<served_model> load_served_model(const std::string& dir,
                                              const model_config& config,
                                              const std::string& name,
                                              const std::string& chat_template_name);

} // namespace volt::http
