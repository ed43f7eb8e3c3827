#include "text/tokenizer_config.hpp"

#include <cstdlib>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "base/error.hpp"
#include "model/file_io.hpp"

namespace volt {

namespace {

using nlohmann::json;

/// transformers writes int(1e30) as model_max_length when a tokenizer has no
/// limit; anything this large means the same.
constexpr double no_length_limit = 1e18;

/// One parsed JSON file; typed reads keep the first failure in `err`.
class json_file {
public:
  explicit json_file(std::string path) : path_(std::move(path)) {}

  /// Parses the file; returns false when it does not exist.
  bool load() {
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec))
      return false;
    auto text = read_text_file(path_);
    if (!text) {
      err = text.error();
      return true;
    }
    try {
      doc_ = json::parse(*text);
    } catch (const json::exception& e) {
      // parse_error, or out_of_range for a number beyond a double (1e400).
      fail_file("not valid JSON: " + parse_message(e));
      return true;
    }
    if (!doc_.is_object())
      fail_file("must hold a JSON object, got " + show(doc_));
    return true;
  }

  /// "<path>: key '<key>'".
  std::string source(const std::string& key) const {
    return path_ + ": key '" + key + "'";
  }

  void fail(const std::string& key, const std::string& what) {
    if (!err)
      err = make_volt_error(volt_errc::invalid_checkpoint,
                            source(key) + " " + what);
  }

  /// The value of `key`, treating null like absence; nullptr after a failure.
  const json* get(const std::string& key) const {
    if (err)
      return nullptr;
    auto i = doc_.find(key);
    return i == doc_.end() || i->is_null() ? nullptr : &*i;
  }

  std::optional<bool> boolean(const std::string& key) {
    auto x = get(key);
    if (!x)
      return std::nullopt;
    if (!x->is_boolean()) {
      fail(key, "must be true or false, got " + show(*x));
      return std::nullopt;
    }
    return x->get<bool>();
  }

  /// A token given as "<s>" or as {"content": "<s>", ...}.
  std::optional<named_token> token_text(const std::string& key) {
    auto x = get(key);
    if (!x)
      return std::nullopt;
    const json* content = x;
    if (x->is_object()) {
      auto i = x->find("content");
      content = i == x->end() ? nullptr : &*i;
    }
    if (!content || !content->is_string()) {
      fail(key, "must be a string or an object with a string \"content\", "
                "got "
                  + show(*x));
      return std::nullopt;
    }
    return named_token{source(key), content->get<std::string>()};
  }

  /// An id, or with `allow_list` a list of ids.
  std::optional<token_id_list> token_ids(const std::string& key,
                                         bool allow_list) {
    auto x = get(key);
    if (!x)
      return std::nullopt;
    token_id_list out{source(key), {}};
    if (x->is_number_integer()) {
      out.ids.push_back(x->get<int64_t>());
    } else if (allow_list && x->is_array() && !x->empty()) {
      for (const auto& id : *x) {
        if (!id.is_number_integer()) {
          fail(key, "must list integer token ids, got " + show(*x));
          return std::nullopt;
        }
        out.ids.push_back(id.get<int64_t>());
      }
    } else {
      fail(key, allow_list ? "must be a token id or a non-empty list of "
                             "token ids, got "
                               + show(*x)
                           : "must be a token id, got " + show(*x));
      return std::nullopt;
    }
    return out;
  }

  std::optional<int64_t> max_length(const std::string& key) {
    auto x = get(key);
    if (!x)
      return std::nullopt;
    if (!x->is_number() || x->get<double>() < 1) {
      fail(key, "must be a positive integer, got " + show(*x));
      return std::nullopt;
    }
    if (x->get<double>() >= no_length_limit)
      return std::nullopt;
    if (!x->is_number_integer()) {
      fail(key, "must be a positive integer, got " + show(*x));
      return std::nullopt;
    }
    return x->get<int64_t>();
  }

  /// A string, or a list of {"name", "template"} entries of which the one
  /// named "default" counts (as transformers picks it).
  std::string chat_template(const std::string& key) {
    auto x = get(key);
    if (!x)
      return {};
    if (x->is_string())
      return x->get<std::string>();
    if (x->is_array()) {
      for (const auto& entry : *x) {
        auto name = entry.is_object() ? entry.find("name") : entry.end();
        auto tmpl = entry.is_object() ? entry.find("template") : entry.end();
        if (name == entry.end() || tmpl == entry.end() || !name->is_string()
            || !tmpl->is_string()) {
          fail(key, "must be a string or a list of {\"name\", \"template\"} "
                    "strings, got "
                      + show(entry));
          return {};
        }
        if (*name == "default")
          return tmpl->get<std::string>();
      }
      return {};
    }
    fail(key, "must be a string or a list of {\"name\", \"template\"}, got "
                + show(*x));
    return {};
  }

  std::vector<added_token> added_tokens(const std::string& key) {
    std::vector<added_token> out;
    auto x = get(key);
    if (!x)
      return out;
    if (!x->is_object()) {
      fail(key, "must be an object mapping ids to tokens, got " + show(*x));
      return out;
    }
    for (const auto& [id_text, entry] : x->items()) {
      auto where = key + "." + id_text;
      char* end = nullptr;
      auto id = std::strtoll(id_text.c_str(), &end, 10);
      if (id_text.empty() || *end != '\0' || id < 0
          || id > std::numeric_limits<int32_t>::max()) {
        fail(where, "is not a token id");
        return out;
      }
      auto content = entry.is_object() ? entry.find("content") : entry.end();
      auto special = entry.is_object() ? entry.find("special") : entry.end();
      if (content == entry.end() || !content->is_string()
          || (special != entry.end() && !special->is_boolean())) {
        fail(where, "must be an object with a string \"content\" and a "
                    "boolean \"special\", got "
                      + show(entry));
        return out;
      }
      out.push_back(
        added_token{id, content->get<std::string>(),
                    special != entry.end() && special->get<bool>()});
    }
    return out;
  }

  const std::string& path() const {
    return path_;
  }

  caf::error err;

private:
  /// Renders a value for an error message, cut short so the message stays one
  /// line.
  static std::string show(const json& x) {
    auto text = x.dump(-1, ' ', false, json::error_handler_t::replace);
    return text.size() > 40 ? text.substr(0, 37) + "..." : text;
  }

  /// nlohmann's message without its "[json.exception.parse_error.101] ".
  static std::string parse_message(const json::exception& e) {
    std::string what = e.what();
    auto pos = what.find("] ");
    return pos == std::string::npos ? what : what.substr(pos + 2);
  }

  void fail_file(const std::string& what) {
    err = make_volt_error(volt_errc::invalid_checkpoint, path_ + ": " + what);
  }

  std::string path_;
  json doc_;
};

caf::error read_tokenizer_json(const std::string& dir, tokenizer_config& cfg) {
  json_file f{join_path(dir, "tokenizer_config.json")};
  if (!f.load() || f.err)
    return f.err;
  cfg.add_bos = f.boolean("add_bos_token");
  if (cfg.add_bos)
    cfg.add_bos_source = f.source("add_bos_token");
  if (auto add_eos = f.boolean("add_eos_token")) {
    cfg.add_eos = *add_eos;
    cfg.add_eos_source = f.source("add_eos_token");
  }
  cfg.bos_token = f.token_text("bos_token");
  cfg.eos_token = f.token_text("eos_token");
  cfg.model_max_length = f.max_length("model_max_length");
  cfg.chat_template = f.chat_template("chat_template");
  if (!cfg.chat_template.empty())
    cfg.chat_template_source = f.source("chat_template");
  cfg.added_tokens = f.added_tokens("added_tokens_decoder");
  return f.err;
}

/// transformers 4.43 and later save the template beside the config instead.
caf::error read_chat_template_file(const std::string& dir,
                                   tokenizer_config& cfg) {
  auto path = join_path(dir, "chat_template.jinja");
  std::error_code ec;
  if (!cfg.chat_template.empty() || !std::filesystem::exists(path, ec))
    return {};
  auto text = read_text_file(path);
  if (!text)
    return text.error();
  cfg.chat_template = std::move(*text);
  cfg.chat_template_source = path;
  return {};
}

/// Reads bos_token_id and eos_token_id of generation_config.json or
/// config.json into `bos` and `eos`.
caf::error read_token_ids(const std::string& path,
                          std::optional<token_id_list>& bos,
                          std::optional<token_id_list>& eos) {
  json_file f{path};
  if (!f.load() || f.err)
    return f.err;
  bos = f.token_ids("bos_token_id", false);
  eos = f.token_ids("eos_token_id", true);
  return f.err;
}

} // namespace

caf::expected<tokenizer_config> read_tokenizer_config(const std::string& dir) {
  tokenizer_config cfg;
  if (auto err = read_tokenizer_json(dir, cfg))
    return err;
  if (auto err = read_chat_template_file(dir, cfg))
    return err;
  if (auto err = read_token_ids(join_path(dir, "generation_config.json"),
                                cfg.generation_bos, cfg.generation_eos))
    return err;
  if (auto err = read_token_ids(join_path(dir, "config.json"), cfg.model_bos,
                                cfg.model_eos))
    return err;
  return cfg;
}

} // namespace volt
