#include "text/chat_template.hpp"

#include "base/error.hpp"

namespace volt {

namespace {

caf::error message_error(const std::string& where, const std::string& what) {
  return make_volt_error(volt_errc::invalid_request, where + ": " + what);
}

std::string at(size_t index) {
  return "messages[" + std::to_string(index) + "]";
}

} // namespace

const char* to_string(chat_format x) {
  switch (x) {
    case chat_format::mistral: return "mistral";
    case chat_format::chatml: return "chatml";
  }
  return "unknown";
}

caf::expected<chat_format> parse_chat_format(std::string_view name) {
  for (auto x : {chat_format::mistral, chat_format::chatml})
    if (name == to_string(x))
      return x;
  return make_volt_error(volt_errc::invalid_config,
                         "chat template '" + std::string{name}
                           + "' is unknown (known: mistral, chatml)");
}

std::optional<chat_format> recognise_chat_format(std::string_view jinja) {
  bool mistral = jinja.find("[INST]") != std::string_view::npos;
  bool chatml = jinja.find("<|im_start|>") != std::string_view::npos;
  if (mistral == chatml)
    return std::nullopt;
  return mistral ? chat_format::mistral : chat_format::chatml;
}

/// A prompt as a list of text stretches and token ids, turned into ids or
/// into text at the end.
class chat_template::builder {
public:
  explicit builder(const tokenizer& tok) : tok_(tok) {}

  /// Appends text to the current stretch.
  void text(std::string_view s) {
    if (parts_.empty() || parts_.back().id)
      parts_.emplace_back();
    parts_.back().text += s;
  }

  /// Appends a token by id.
  void token(int32_t id) {
    parts_.push_back(part{{}, id});
  }

  /// Appends a template marker: its id when the vocabulary has it as one
  /// token, else its text.
  void marker(std::string_view m) {
    if (auto id = tok_.token_id(m))
      token(*id);
    else
      text(m);
  }

  std::vector<int32_t> ids() const {
    std::vector<int32_t> out;
    for (const auto& p : parts_) {
      if (p.id) {
        out.push_back(*p.id);
        continue;
      }
      auto ids = tok_.encode(p.text, false);
      out.insert(out.end(), ids.begin(), ids.end());
    }
    return out;
  }

  std::string rendered() const {
    std::string out;
    for (const auto& p : parts_) {
      if (!p.id) {
        out += p.text;
        continue;
      }
      // The ids come from the tokenizer itself, so they always have a piece.
      if (auto piece = tok_.piece(*p.id))
        out += *piece;
    }
    return out;
  }

private:
  struct part {
    std::string text;
    std::optional<int32_t> id;
  };

  const tokenizer& tok_;
  std::vector<part> parts_;
};

chat_template::chat_template(std::shared_ptr<const tokenizer> tok,
                             chat_format format)
  : tok_(std::move(tok)), format_(format) {}

caf::expected<chat_template>
chat_template::select(std::shared_ptr<const tokenizer> tok,
                      std::string_view name) {
  if (!name.empty()) {
    auto format = parse_chat_format(name);
    if (!format)
      return format.error();
    return chat_template{std::move(tok), *format};
  }
  if (tok->chat_template().empty())
    return make_volt_error(
      volt_errc::invalid_checkpoint,
      tok->dir()
        + ": no chat template (neither tokenizer_config."
          "json's chat_template nor chat_template.jinja); "
          "name the format explicitly (mistral or chatml)");
  auto format = recognise_chat_format(tok->chat_template());
  if (!format)
    return make_volt_error(
      volt_errc::invalid_checkpoint,
      tok->chat_template_source()
        + " is not a template Volt recognises (it renders "
          "mistral [INST] and chatml <|im_start|> itself); "
          "name the format explicitly (mistral or chatml)");
  return chat_template{std::move(tok), *format};
}

caf::expected<std::vector<int32_t>>
chat_template::apply(const std::vector<chat_message>& messages,
                     bool add_generation_prompt) const {
  builder out{*tok_};
  if (auto err = build(messages, add_generation_prompt, out))
    return err;
  return out.ids();
}

caf::expected<std::string>
chat_template::render(const std::vector<chat_message>& messages,
                      bool add_generation_prompt) const {
  builder out{*tok_};
  if (auto err = build(messages, add_generation_prompt, out))
    return err;
  return out.rendered();
}

caf::error chat_template::build(const std::vector<chat_message>& messages,
                                bool add_generation_prompt,
                                builder& out) const {
  if (messages.empty())
    return message_error("messages", "the conversation is empty");
  for (size_t i = 0; i < messages.size(); ++i) {
    const auto& role = messages[i].role;
    if (role != "system" && role != "user" && role != "assistant")
      return message_error(at(i), "role '" + role
                                    + "' is not one of system, user, "
                                      "assistant");
  }
  if (format_ == chat_format::mistral)
    return build_mistral(messages, add_generation_prompt, out);
  build_chatml(messages, add_generation_prompt, out);
  return {};
}

caf::error
chat_template::build_mistral(const std::vector<chat_message>& messages,
                             bool add_generation_prompt, builder& out) const {
  // Mixtral's template: an optional system message first, then strictly
  // user, assistant, user, ...; the system text joins the first user turn.
  size_t first = messages.front().role == "system" ? 1 : 0;
  if (first == messages.size())
    return message_error("messages", "no user message after the system "
                                     "message");
  if (auto bos = tok_->bos_id())
    out.token(*bos);
  for (size_t i = first; i < messages.size(); ++i) {
    const auto& m = messages[i];
    bool user_turn = (i - first) % 2 == 0;
    const char* expected = user_turn ? "user" : "assistant";
    if (m.role == "system")
      return message_error(at(i), "a system message may only come first");
    if (m.role != expected)
      return message_error(at(i),
                           std::string{user_turn ? "expected a user"
                                                 : "expected an assistant"}
                             + " message, got '" + m.role
                             + "' (after the optional system message, "
                               "roles alternate user/assistant)");
    if (m.role == "user") {
      // The space before "[INST]" of Mixtral's template is sentencepiece's
      // leading "▁" of the stretch.
      out.text("[INST] ");
      if (i == first && first == 1)
        out.text(messages.front().content + "\n\n");
      out.text(m.content + " [/INST]");
    } else {
      out.text(" " + m.content);
      if (!tok_->eos_ids().empty())
        out.token(tok_->eos_ids().front());
    }
  }
  // Mistral's format has no generation prompt: the model answers a prompt
  // that ends with a user turn; after "</s>" it would start a new document.
  if (add_generation_prompt && messages.back().role != "user")
    return message_error(at(messages.size() - 1),
                         "the last message must be the user's for the model "
                         "to reply");
  return {};
}

void chat_template::build_chatml(const std::vector<chat_message>& messages,
                                 bool add_generation_prompt,
                                 builder& out) const {
  for (const auto& m : messages) {
    out.marker("<|im_start|>");
    out.text(m.role + "\n" + m.content);
    out.marker("<|im_end|>");
    out.text("\n");
  }
  if (add_generation_prompt) {
    out.marker("<|im_start|>");
    out.text("assistant\n");
  }
}

} // namespace volt
