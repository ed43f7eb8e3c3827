#define CAF_SUITE model.fingerprint

// The checkpoint fingerprint tells checkpoints of the same shapes apart: it
// follows config.json and the tensors' data, not the files' names, paths or
// how the tensors are split into files.

#include "model/checkpoint_fingerprint.hpp"

#include "model/checkpoint.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

std::string fingerprint_of(const std::string& dir) {
  auto ckpt = checkpoint::open(dir);
  if (!ckpt) {
    CAF_MESSAGE(describe(ckpt.error()));
    return {};
  }
  return ckpt->fingerprint();
}

tensor_to_write& tensor_named(std::vector<tensor_to_write>& ts,
                              const std::string& name) {
  for (auto& t : ts)
    if (t.name == name)
      return t;
  CAF_FAIL("no tensor " << name);
}

} // namespace

CAF_TEST(a copy of a checkpoint has its fingerprint) {
  fixture_copies copies;
  auto original = fingerprint_of(tiny_mixtral_dir());
  CAF_CHECK_EQUAL(original.size(), 64u);
  CAF_CHECK_EQUAL(original.find_first_not_of("0123456789abcdef"),
                  std::string::npos);
  CAF_CHECK_EQUAL(fingerprint_of(copies.write("copy", copies.tensors)),
                  original);
}

CAF_TEST(other weights of the same shapes change the fingerprint) {
  fixture_copies copies;
  auto original = fingerprint_of(tiny_mixtral_dir());
  // One element of an expert, in a tensor small enough to be read whole.
  auto ts = copies.tensors;
  auto& w2 = tensor_named(ts, expert_weight_name(0, 3, "w2"));
  CAF_REQUIRE_LESS_OR_EQUAL(w2.bytes.size(),
                            fingerprint_block * fingerprint_blocks);
  w2.bytes[w2.bytes.size() / 2] ^= 0x01;
  CAF_CHECK_NOT_EQUAL(fingerprint_of(copies.write("expert", ts)), original);
  // A larger tensor is sampled: its first and last bytes count.
  for (auto at : {size_t{0}, size_t{1}}) {
    auto big = copies.tensors;
    auto& embed = tensor_named(big, "model.embed_tokens.weight");
    CAF_REQUIRE_GREATER(embed.bytes.size(),
                        fingerprint_block * fingerprint_blocks);
    auto pos = at == 0 ? 0 : embed.bytes.size() - 1;
    embed.bytes[pos] ^= 0x80;
    CAF_CHECK_NOT_EQUAL(
      fingerprint_of(copies.write("embed" + std::to_string(at), big)),
      original);
  }
}

CAF_TEST(config json and dtypes are part of the fingerprint) {
  fixture_copies copies;
  auto original = fingerprint_of(tiny_mixtral_dir());
  auto text = copies.config_text;
  copies.config_text = text.substr(0, text.rfind('}')) + ", \"x\": 1}";
  CAF_CHECK_NOT_EQUAL(fingerprint_of(copies.write("config", copies.tensors)),
                      original);
  copies.config_text = text;
  auto bf16 = convert_tensors(copies.tensors, dtype::bf16);
  CAF_CHECK_NOT_EQUAL(fingerprint_of(copies.write("bf16", bf16)), original);
}

CAF_TEST(splitting the tensors into other files keeps the fingerprint) {
  fixture_copies copies;
  auto original = fingerprint_of(tiny_mixtral_dir());
  auto dir = copies.tmp.subdir("sharded");
  auto half = copies.tensors.size() / 2;
  std::vector<tensor_to_write> first(copies.tensors.begin(),
                                     copies.tensors.begin() + half);
  std::vector<tensor_to_write> second(copies.tensors.begin() + half,
                                      copies.tensors.end());
  CAF_REQUIRE(!write_checkpoint(dir, copies.config_text, second,
                                "model-00001-of-00002.safetensors"));
  CAF_REQUIRE(
    !write_safetensors(dir + "/model-00002-of-00002.safetensors", first));
  CAF_CHECK_EQUAL(fingerprint_of(dir), original);
}
