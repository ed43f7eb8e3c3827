#include "apps/text_prompt.hpp"

#include "base/error.hpp"
#include "http/choice_output.hpp"
#include "text/chat_template.hpp"

namespace volt {

namespace {

caf::error flag_error(std::string what) {
  return make_volt_error(volt_errc::invalid_config, std::move(what));
}

} // namespace

std::string text_prompt::decode(const std::vector<int32_t>& tokens) const {
  std::optional<int32_t> context;
  if (!chat && !ids.empty())
    context = ids.back();
  http::choice_output out{tok, {}, context};
  std::string text;
  for (auto id : tokens)
    text += out.push(id);
  return text + out.finish();
}

caf::expected<std::optional<text_prompt>>
text_prompt_from(const cli_args& args) {
  auto given = static_cast<int>(args.has("prompt-ids"))
               + static_cast<int>(args.has("prompt"))
               + static_cast<int>(args.has("chat"));
  if (given != 1)
    return flag_error(given == 0 ? "--prompt-ids: missing (or --prompt TEXT, "
                                   "or --chat MESSAGE)"
                                 : "--prompt-ids, --prompt and --chat: give "
                                   "one of them");
  if (args.has("prompt-ids"))
    return std::optional<text_prompt>{};
  auto flag = args.has("chat") ? "--chat" : "--prompt";
  auto dir = args.has("tokenizer") ? args.get("tokenizer") : args.get("model");
  if (dir.empty())
    return flag_error(std::string{flag}
                      + ": with --connect, name the checkpoint folder whose "
                        "tokenizer to use with --tokenizer DIR");
  if (!tokenizer::has_tokenizer(dir))
    return flag_error(std::string{flag} + ": " + dir
                      + " has no tokenizer.model (use --prompt-ids)");
  auto tok = tokenizer::load(dir);
  if (!tok)
    return std::move(tok.error());
  text_prompt out;
  out.tok = *tok;
  if (!args.has("chat")) {
    out.ids = out.tok->encode(args.get("prompt"), true);
    return std::optional<text_prompt>{std::move(out)};
  }
  out.chat = true;
  auto format = chat_template::select(out.tok, args.get("chat-template"));
  if (!format)
    return flag_error("--chat: " + describe(format.error())
                      + " with --chat-template");
  auto ids = format->apply({{"user", args.get("chat")}}, true);
  if (!ids)
    return flag_error("--chat: " + describe(ids.error()));
  out.ids = std::move(*ids);
  return std::optional<text_prompt>{std::move(out)};
}

} // namespace volt
