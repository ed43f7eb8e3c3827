#define CAF_SUITE apps.hostile_input

// Input a hostile probe sent to volt-node, checked in real processes: KV pools
// larger than the machine, a config.json claiming 10^9 layers or another
// activation, NaN weights and logits that overflow; each ends with one line
// and the exit code, never a crash or a node that says "ready" and then
// fails every client.

#include "tests/apps/cli_checks.hpp"
#include "tests/cluster.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// The tiny fixture under `dir`/`name` with `from` replaced by `to` in its
/// config.json and `edit` applied to its tensors.
template <class Edit>
std::string tiny_copy(const temp_dir& dir, const std::string& name,
                      const std::string& from, const std::string& to,
                      Edit edit) {
  auto text = read_text(tiny_mixtral_dir() + "/config.json");
  if (!from.empty()) {
    auto pos = text.find(from);
    CAF_REQUIRE(pos != std::string::npos);
    text.replace(pos, from.size(), to);
  }
  auto tensors = copy_tensors(tiny_mixtral_dir());
  edit(tensors);
  auto path = dir.subdir(name);
  CAF_REQUIRE(!write_checkpoint(path, text, tensors));
  return path;
}

std::string tiny_copy(const temp_dir& dir, const std::string& name,
                      const std::string& from, const std::string& to) {
  return tiny_copy(dir, name, from, to, [](std::vector<tensor_to_write>&) {});
}

/// Sets every element of tensor `name` to `value`.
auto fill_tensor(const std::string& name, float value) {
  return [=](std::vector<tensor_to_write>& ts) {
    for (auto& t : ts)
      if (t.name == name)
        t.bytes = float_bytes(
          std::vector<float>(t.bytes.size() / dtype_size(t.type), value),
          t.type);
  };
}

/// A standalone node with `kv` in its [kv_cache] section; returns how it
/// ended, or -1 when it was still running after `wait`.
run_result run_node_with(const temp_dir& dir, const std::string& kv,
                         const std::string& model = tiny_mixtral_dir()) {
  auto file = write_node_toml(
    dir, {"kv", "standalone", free_port(), 0, "[kv_cache]\n" + kv, model});
  return run_process({volt_node_binary(), "--config", file},
                     std::chrono::seconds{20});
}

} // namespace

CAF_TEST(kv pools larger than the memory stop the node before ready) {
  temp_dir dir;
  // 2^24 pages of 4096 tokens are 32 TiB of float32 K/V for the tiny
  // model: inside the documented ranges, beyond any machine.
  auto pages = run_node_with(dir, "page_size = 4096\nnum_pages = 16777216\n");
  check_bad_input(pages, {"kv.toml: [kv_cache] num_pages = 16777216: the KV "
                          "pool of 16777216 pages needs 32.0 TiB of host "
                          "memory, but",
                          "are available ("});
  CAF_CHECK_EQUAL(pages.err.find("ready"), std::string::npos);
  auto mib = run_node_with(dir, "memory_mib = 16777216\n");
  check_bad_input(mib, {"kv.toml: [kv_cache] memory_mib = 16777216: the KV "
                        "pool of 2147483648 pages needs",
                        "TiB of host memory"});
  // Default sizing: one sequence of the model's whole context.
  auto huge = tiny_copy(dir, "context", "\"max_position_embeddings\": 1024",
                        "\"max_position_embeddings\": 2e9");
  check_bad_input(run_node_with(dir, "", huge),
                  {huge
                     + "/config.json: max_position_embeddings = 2000000000",
                   "set one of them): the KV pool of 125000000 pages needs"});
  check_bad_input(generate({"--model", huge, "--prompt-ids", "1"}),
                  {"max_position_embeddings = 2000000000"});
}

CAF_TEST(a config json that claims a billion layers fails fast) {
  temp_dir dir;
  auto model = tiny_copy(dir, "layers", "\"num_hidden_layers\": 2",
                         "\"num_hidden_layers\": 1000000000");
  auto started = std::chrono::steady_clock::now();
  check_bad_input(generate({"--model", model, "--prompt-ids", "1"}),
                  {model + "/config.json: num_hidden_layers is 1000000000",
                   "tensors of 2 layers"});
  CAF_CHECK_LESS(std::chrono::steady_clock::now() - started,
                 std::chrono::seconds{10});
}

CAF_TEST(another activation or an eos outside the vocabulary is refused) {
  temp_dir dir;
  auto gelu = tiny_copy(dir, "gelu", "\"hidden_act\": \"silu\"",
                        "\"hidden_act\": \"gelu\"");
  check_bad_input(generate({"--model", gelu, "--prompt-ids", "1"}),
                  {gelu + "/config.json: hidden_act \"gelu\" is not supported"});
  auto eos = tiny_copy(dir, "eos", "\"eos_token_id\": 2",
                       "\"eos_token_id\": 32000");
  check_bad_input(generate({"--model", eos, "--prompt-ids", "1"}),
                  {"key 'eos_token_id': token id 32000 is outside the "
                   "vocabulary [0, 320)"});
}

CAF_TEST(nan weights are refused at load naming the tensor) {
  temp_dir dir;
  auto model = tiny_copy(dir, "nan", "", "",
                         fill_tensor("model.layers.1.post_attention_"
                                     "layernorm.weight",
                                     NAN));
  check_bad_input(generate({"--model", model, "--prompt-ids", "1", "--json"}),
                  {model + "/model.safetensors: tensor 'model.layers.1.post_"
                           "attention_layernorm.weight' holds NaN at element "
                           "0 of [64]"});
  auto node = run_node_with(dir, "", model);
  check_bad_input(node, {"holds NaN"});
  CAF_CHECK_EQUAL(node.err.find("ready"), std::string::npos);
}

CAF_TEST(logits that overflow are an error reply and not a token) {
  // Finite weights whose products overflow float: every logit is +-inf or
  // NaN. The greedy pick used to answer token 0 with "logits": null.
  temp_dir dir;
  auto model = tiny_copy(dir, "overflow", "", "",
                         fill_tensor("lm_head.weight", 3e38f));
  auto r = generate({"--model", model, "--prompt-ids", "1,2,3", "--json"});
  CAF_CHECK_EQUAL(r.exit_code, 1);
  CAF_CHECK(r.out.empty());
  CAF_CHECK_NOT_EQUAL(r.err.find("\nvolt-node: engine: request 1: the model "
                                 "computed "),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.err.find("at position 2 (sequence 1); no token can "
                                 "be sampled from it"),
                      std::string::npos);
}

CAF_TEST(ipv6 addresses in logs are in brackets) {
  temp_dir dir;
  auto port = free_port();
  auto file = dir.file("v6.toml");
  // Mutual TLS over IPv6 too.
  write_text(file, "[network]\nhost = \"::1\"\nport = " + std::to_string(port)
                     + "\n[model]\npath = \"" + tiny_mixtral_dir() + "\"\n"
                     + tls_security_toml());
  node_process node{file};
  CAF_REQUIRE(node.wait_ready());
  CAF_CHECK_NOT_EQUAL(node.log().find("serving on [::1]:" + std::to_string(port)),
                      std::string::npos);
  auto r = run_generate({"--connect", "[::1]:" + std::to_string(port)}, "203",
                        2);
  CAF_CHECK_EQUAL(r.exit_code, 0);
  CAF_CHECK_EQUAL(node.stop(), 0);
}
