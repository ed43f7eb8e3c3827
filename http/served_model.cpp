#include "http/served_model.hpp"

#include <filesystem>

#include "base/error.hpp"

namespace volt::http {

namespace {

/// The last component of `dir`, ignoring trailing slashes.
std::string folder_name(const std::string& dir) {
  std::filesystem::path path{dir};
  while (!path.empty() && path.filename().empty())
    path = path.parent_path();
  auto name = path.filename().string();
  return name.empty() || name == "." ? std::string{"volt"} : name;
}

} // namespace

caf::expected<served_model> load_served_model(const std::string& dir,
                                              const model_config& config,
                                              const std::string& name,
                                              const std::string& chat_template_name) {
  served_model m;
  m.dir = dir;
  m.name = name.empty() ? folder_name(dir) : name;
  m.max_model_len = config.max_position_embeddings;
  m.vocab_size = config.vocab_size;
  if (!tokenizer::has_tokenizer(dir)) {
    m.text_error = dir + " has no tokenizer.model, so this model takes and "
                         "returns token ids only (send the prompt as an "
                         "array of token ids)";
    m.chat_error = "chat needs a tokenizer: " + m.text_error;
    return m;
  }
  auto tok = tokenizer::load(dir);
  if (!tok)
    return std::move(tok.error());
  m.tok = *tok;
  auto chat = chat_template::select(m.tok, chat_template_name);
  if (chat)
    m.chat = *chat;
  else
    m.chat_error = "the chat endpoint is off: " + describe(chat.error())
                   + " with [http] chat_template (VOLT_HTTP_CHAT_TEMPLATE)";
  return m;
}

} // namespace volt::http
