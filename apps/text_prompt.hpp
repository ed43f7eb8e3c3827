#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "apps/cli_args.hpp"
#include "caf/expected.hpp"
#include "text/tokenizer.hpp"

namespace volt {

/// The text side of `generate --prompt TEXT` and `--chat MESSAGE`: the
/// prompt's ids from the checkpoint's tokenizer (and chat template), and the
/// answer's text.
struct text_prompt {
  std::shared_ptr<const tokenizer> tok;
  std::vector<int32_t> ids;
  /// A chat reply is a message of its own; a completion continues the
  /// prompt's text (its first token keeps a leading space).
  bool chat = false;

  /// The text of `tokens` generated for this prompt.
  std::string decode(const std::vector<int32_t>& tokens) const;
};

/// Reads --prompt or --chat (with --chat-template) using the tokenizer of
/// --tokenizer DIR, or of --model; nullopt when neither flag is given (the
/// prompt is --prompt-ids). Errors name the flag.
caf::expected<std::optional<text_prompt>>
text_prompt_from(const cli_args& args);

} // namespace volt
