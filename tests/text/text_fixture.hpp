#pragma once

// The text suites' shared fixture: tiny-mixtral-text-a's tokenizer and the
// strings and ids of its reference.json (made with transformers and
// sentencepiece). Header-only so each suite can include it.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "model/json.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "text/tokenizer.hpp"

#include "tests/test_dsl.hpp"

namespace volt::test {

/// The folder of the model trained on text (tokenizer.model and friends).
inline std::string text_model_dir() {
  return std::string{VOLT_TEST_DATA_DIR} + "/tiny-mixtral-text-a";
}

/// One entry of reference.json's tokenizer_cases.
struct tokenizer_case {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  std::string decoded;
};

/// One entry of reference.json's cases (a prompt and its greedy reply).
struct prompt_case {
  std::string prompt;
  std::vector<int32_t> input_ids;
  std::vector<int32_t> greedy_new_tokens;
  std::string greedy_text;
};

/// The reference data; aborts when the fixture does not parse, since every
/// test below depends on it.
struct text_reference {
  std::vector<tokenizer_case> tokenizer_cases;
  std::vector<prompt_case> cases;
};

inline std::vector<int32_t> ids_of(const json::value& arr) {
  std::vector<int32_t> out;
  for (const auto& x : arr)
    out.push_back(x.get<int32_t>());
  return out;
}

inline const json::value& member_of(const json::value& obj, const char* key) {
  auto x = json::find(obj, key);
  if (x == nullptr) {
    std::fprintf(stderr, "reference.json: missing key '%s'\n", key);
    std::abort();
  }
  return *x;
}

inline const text_reference& load_text_reference() {
  static const text_reference ref = [] {
    auto doc = json::parse_file(text_model_dir() + "/reference.json");
    if (!doc) {
      std::fprintf(stderr, "%s\n", describe(doc.error()).c_str());
      std::abort();
    }
    text_reference out;
    for (const auto& c : member_of(*doc, "tokenizer_cases")) {
      tokenizer_case tc{member_of(c, "text").get<std::string>(),
                        ids_of(member_of(c, "ids")),
                        {},
                        member_of(c, "decoded").get<std::string>()};
      for (const auto& p : member_of(c, "pieces"))
        tc.pieces.push_back(p.get<std::string>());
      out.tokenizer_cases.push_back(std::move(tc));
    }
    for (const auto& c : member_of(*doc, "cases"))
      out.cases.push_back(prompt_case{member_of(c, "prompt").get<std::string>(),
                                      ids_of(member_of(c, "input_ids")),
                                      ids_of(member_of(c, "greedy_new_tokens")),
                                      member_of(c, "greedy_text").get<std::string>()});
    return out;
  }();
  return ref;
}

/// The fixture's tokenizer, loaded once; aborts when it does not load.
inline std::shared_ptr<const tokenizer> text_tokenizer() {
  static const auto tok = [] {
    auto t = tokenizer::load(text_model_dir());
    if (!t) {
      std::fprintf(stderr, "%s\n", describe(t.error()).c_str());
      std::abort();
    }
    return *t;
  }();
  return tok;
}

/// A file name and its text.
using named_text = std::pair<std::string, std::string>;

/// Writes the folder `<tmp>/<name>` with the fixture's tokenizer.model and
/// `files`; returns its path.
inline std::string write_tokenizer_dir(const temp_dir& tmp,
                                       const std::string& name,
                                       const std::vector<named_text>& files) {
  auto dir = tmp.subdir(name);
  write_text(dir + "/tokenizer.model",
             read_text(text_model_dir() + "/tokenizer.model"));
  for (const auto& [file, text] : files)
    write_text(dir + "/" + file, text);
  return dir;
}

/// The value of `x`, failing the test on an error. CAF's check macros keep
/// references to their arguments, so `.value()` of a temporary would dangle.
template <class T>
T value_of(caf::expected<T> x) {
  if (!x)
    CAF_FAIL(describe(x.error()));
  return std::move(*x);
}

/// Renders ids as "[1, 2, 3]" for failure messages.
inline std::string show_ids(const std::vector<int32_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i)
    out += (i ? ", " : "") + std::to_string(ids[i]);
  return out + "]";
}

} // namespace volt::test
