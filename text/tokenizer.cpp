#include "text/tokenizer.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include <sentencepiece_processor.h>

#include "base/error.hpp"
#include "model/file_io.hpp"
#include "text/tokenizer_config.hpp"

namespace volt {

namespace {

/// Added-token ids past this are surely a typo, and would cost a table entry
/// per id up to them (real vocabularies stay under a million).
constexpr int64_t max_vocab_size = int64_t{1} << 24;

caf::error checkpoint_error(const std::string& what) {
  return make_volt_error(volt_errc::invalid_checkpoint, what);
}

/// sentencepiece reports a model that does not parse with the source line of
/// the check that failed; users are better served by saying what it means.
std::string describe_load_failure(const sentencepiece::util::Status& st) {
  std::string what = st.error_message();
  if (what.find("ParseFromArray") != std::string::npos)
    return "its protobuf does not parse";
  while (!what.empty() && (what.back() == ' ' || what.back() == '.'))
    what.pop_back();
  return what.empty() ? "unknown failure" : what;
}

/// The error for an id that names no token; `where` tells where it was seen.
caf::error unknown_id(int32_t id, int32_t vocab_size,
                      const std::string& where) {
  return make_volt_error(volt_errc::invalid_request,
                         "token id " + std::to_string(id) + where
                           + " is not in the vocabulary (ids 0 to "
                           + std::to_string(vocab_size - 1) + ")");
}

} // namespace

tokenizer::tokenizer() = default;

tokenizer::~tokenizer() = default;

bool tokenizer::has_tokenizer(const std::string& model_dir) {
  std::error_code ec;
  return std::filesystem::exists(join_path(model_dir, "tokenizer.model"), ec);
}

caf::expected<std::shared_ptr<const tokenizer>>
tokenizer::load(const std::string& model_dir) {
  auto cfg = read_tokenizer_config(model_dir);
  if (!cfg)
    return cfg.error();
  std::shared_ptr<tokenizer> tok{new tokenizer};
  if (auto err = tok->init(model_dir, *cfg))
    return err;
  return std::shared_ptr<const tokenizer>{std::move(tok)};
}

caf::error tokenizer::init(const std::string& model_dir,
                           const tokenizer_config& cfg) {
  dir_ = model_dir;
  auto path = join_path(model_dir, "tokenizer.model");
  auto bytes = read_text_file(path);
  if (!bytes)
    return bytes.error();
  sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto st = sp_->LoadFromSerializedProto(*bytes);
  if (!st.ok())
    return checkpoint_error(path + ": not a valid sentencepiece model ("
                            + describe_load_failure(st) + ")");
  sp_size_ = sp_->GetPieceSize();
  if (sp_size_ <= 0)
    return checkpoint_error(path + ": the sentencepiece model has no pieces");
  if (auto err = init_kinds(cfg))
    return err;
  if (auto err = init_special_ids(cfg))
    return err;
  model_max_length_ = cfg.model_max_length;
  chat_template_ = cfg.chat_template;
  chat_template_source_ = cfg.chat_template_source;
  return {};
}

caf::error tokenizer::init_kinds(const tokenizer_config& cfg) {
  int64_t size = sp_size_;
  for (const auto& t : cfg.added_tokens) {
    if (t.id >= max_vocab_size)
      return checkpoint_error(join_path(dir_, "tokenizer_config.json")
                              + ": key 'added_tokens_decoder."
                              + std::to_string(t.id)
                              + "' is past any real vocabulary (at most "
                              + std::to_string(max_vocab_size) + " ids)");
    size = std::max(size, t.id + 1);
  }
  kinds_.assign(static_cast<size_t>(size), kind::gap);
  for (int32_t id = 0; id < sp_size_; ++id)
    kinds_[id] = sp_->IsControl(id) || sp_->IsUnknown(id) ? kind::special
                                                          : kind::text;
  added_text_.assign(static_cast<size_t>(size - sp_size_), std::string{});
  for (const auto& t : cfg.added_tokens) {
    if (t.id < sp_size_) {
      // The piece exists already; the config can only make it special.
      if (t.special)
        kinds_[t.id] = kind::special;
      continue;
    }
    kinds_[t.id] = t.special ? kind::special : kind::added;
    added_text_[t.id - sp_size_] = t.content;
  }
  return {};
}

caf::error tokenizer::init_special_ids(const tokenizer_config& cfg) {
  // Every id the files give is checked, not only the one that wins, so that
  // a broken file is reported rather than silently shadowed.
  for (const auto* list : {&cfg.generation_bos, &cfg.generation_eos,
                           &cfg.model_bos, &cfg.model_eos}) {
    if (!*list)
      continue;
    for (auto id : (*list)->ids)
      if (id < 0 || id >= vocab_size() || !contains(static_cast<int32_t>(id)))
        return checkpoint_error((*list)->source + " is " + std::to_string(id)
                                + ", not a token id of this tokenizer (it has "
                                + std::to_string(vocab_size()) + " ids)");
  }
  auto resolve = [&](const std::optional<named_token>& named,
                     const std::optional<token_id_list>& generation,
                     const std::optional<token_id_list>& model, int sp_id,
                     std::optional<int32_t>& out) -> caf::error {
    if (named) {
      auto id = token_id(named->text);
      if (!id)
        return checkpoint_error(
          named->source + " is \"" + named->text
          + "\", which is not in the vocabulary");
      out = *id;
    } else if (generation) {
      out = static_cast<int32_t>(generation->ids.front());
    } else if (model) {
      out = static_cast<int32_t>(model->ids.front());
    } else if (sp_id >= 0) {
      out = sp_id;
    }
    return {};
  };
  std::optional<int32_t> eos;
  if (auto err = resolve(cfg.bos_token, cfg.generation_bos, cfg.model_bos,
                         sp_->bos_id(), bos_id_))
    return err;
  if (auto err = resolve(cfg.eos_token, cfg.generation_eos, cfg.model_eos,
                         sp_->eos_id(), eos))
    return err;
  if (eos)
    eos_ids_.push_back(*eos);
  if (cfg.generation_eos)
    for (auto id : cfg.generation_eos->ids)
      if (std::find(eos_ids_.begin(), eos_ids_.end(), id) == eos_ids_.end())
        eos_ids_.push_back(static_cast<int32_t>(id));
  // transformers' LlamaTokenizer adds BOS unless told otherwise.
  add_bos_ = cfg.add_bos.value_or(bos_id_.has_value());
  add_eos_ = cfg.add_eos;
  if (add_bos_ && !bos_id_)
    return checkpoint_error(cfg.add_bos_source
                            + " is true but the tokenizer has no BOS token");
  if (add_eos_ && eos_ids_.empty())
    return checkpoint_error(cfg.add_eos_source
                            + " is true but the tokenizer has no EOS token");
  // skip_special_tokens drops them, as transformers' all_special_ids does.
  if (bos_id_)
    kinds_[*bos_id_] = kind::special;
  for (auto id : eos_ids_)
    kinds_[id] = kind::special;
  return {};
}

std::vector<int32_t> tokenizer::encode(std::string_view text,
                                       bool add_special_tokens) const {
  std::vector<int> pieces;
  // Fails only without a loaded model, which load() rules out.
  static_cast<void>(sp_->Encode(text, &pieces));
  std::vector<int32_t> out;
  out.reserve(pieces.size() + 2);
  if (add_special_tokens && add_bos_)
    out.push_back(*bos_id_);
  out.insert(out.end(), pieces.begin(), pieces.end());
  if (add_special_tokens && add_eos_)
    out.push_back(eos_ids_.front());
  return out;
}

caf::expected<std::string> tokenizer::decode(const std::vector<int32_t>& ids,
                                             bool skip_special_tokens) const {
  std::string out;
  std::vector<int> run;
  for (size_t i = 0; i < ids.size(); ++i) {
    auto id = ids[i];
    if (!contains(id))
      return unknown_id(id, vocab_size(), " at position " + std::to_string(i));
    switch (kinds_[id]) {
      case kind::text: run.push_back(id); break;
      case kind::special:
        // Skipped tokens leave their neighbours one run, as if never there.
        if (skip_special_tokens)
          break;
        [[fallthrough]];
      case kind::added:
        flush_run(run, out);
        out += token_text(id);
        break;
      case kind::gap: break;
    }
  }
  flush_run(run, out);
  return out;
}

void tokenizer::flush_run(std::vector<int>& run, std::string& out) const {
  if (run.empty())
    return;
  std::string text;
  // Fails only on ids outside the model, which decode() has ruled out.
  static_cast<void>(sp_->Decode(run, &text));
  out += text;
  run.clear();
}

std::string tokenizer::token_text(int32_t id) const {
  return id < sp_size_ ? sp_->IdToPiece(id) : added_text_[id - sp_size_];
}

caf::expected<std::string> tokenizer::piece(int32_t id) const {
  if (!contains(id))
    return unknown_id(id, vocab_size(), "");
  return token_text(id);
}

std::optional<int32_t> tokenizer::token_id(std::string_view text) const {
  for (size_t i = 0; i < added_text_.size(); ++i)
    if (kinds_[sp_size_ + i] != kind::gap && added_text_[i] == text)
      return static_cast<int32_t>(sp_size_ + i);
  // PieceToId answers <unk>'s id for text it does not know.
  auto id = sp_->PieceToId(text);
  if (id >= 0 && id < sp_size_ && sp_->IdToPiece(id) == text)
    return id;
  return std::nullopt;
}

std::optional<uint8_t> tokenizer::byte_value(int32_t id) const {
  if (id < 0 || id >= sp_size_ || !sp_->IsByte(id))
    return std::nullopt;
  // Byte pieces are spelled "<0xAB>".
  const auto& p = sp_->IdToPiece(id);
  return static_cast<uint8_t>(std::strtoul(p.c_str() + 3, nullptr, 16));
}

} // namespace volt
