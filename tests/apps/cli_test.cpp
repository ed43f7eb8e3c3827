#define CAF_SUITE apps.cli

// volt-node as a user runs it: generation output (ids, or text for --prompt
// and --chat), exit codes and one-line errors for bad flags, checkpoints,
// prompts and configuration files, and a node's start and clean stop.

#include <filesystem>

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "tests/apps/cli_checks.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/cluster.hpp"
#include "tests/process.hpp"
#include "tests/text/text_fixture.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(generate prints the reference tokens and logits as json) {
  auto r = generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "203",
                     "--max-new-tokens", "12", "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = json::parse(r.out, "stdout");
  CAF_REQUIRE(doc);
  auto tokens = doc->at("new_tokens").get<std::vector<int64_t>>();
  CAF_CHECK_EQUAL(tokens, std::vector<int64_t>({170, 288, 170, 288, 170, 170,
                                                288, 170, 288, 170, 170, 288}));
  CAF_CHECK_EQUAL(doc->at("logits").size(), 320u);
  CAF_CHECK_LESS(
    std::abs(doc->at("logits").at(0).get<double>() - -0.219282), 1e-5);
}

CAF_TEST(generate samples n sequences and prints them as json) {
  auto r = generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "1,2,3",
                     "--max-new-tokens", "5", "--ignore-eos", "--temperature",
                     "1", "--seed", "11", "--n", "3", "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = json::parse(r.out, "stdout");
  CAF_REQUIRE(doc);
  const auto* sequences = json::find(*doc, "sequences");
  CAF_REQUIRE(sequences != nullptr);
  CAF_REQUIRE_EQUAL(sequences->size(), 3u);
  for (const auto& s : *sequences)
    CAF_CHECK_EQUAL(s.size(), 5u);
  CAF_CHECK_EQUAL(doc->at("finish_reasons").size(), 3u);
  // The first sequence is also "new_tokens"; the forks shared the prompt page.
  CAF_CHECK_EQUAL(sequences->at(0).size(), doc->at("new_tokens").size());
  const auto* kv = json::find(*doc, "kv");
  CAF_REQUIRE(kv != nullptr);
  CAF_CHECK_EQUAL(kv->at("copy_on_write").get<int64_t>(), 2);
  CAF_CHECK_EQUAL(kv->at("preemptions").get<int64_t>(), 0);
  // Without --n there is no "sequences".
  auto single = generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "1",
                          "--max-new-tokens", "2", "--json"});
  CAF_REQUIRE_EQUAL(single.exit_code, 0);
  CAF_CHECK_EQUAL(single.out.find("sequences"), std::string::npos);
}

CAF_TEST(generate with masked experts routes without them and says so) {
  // Seven of eight experts masked: every token's top 2 loses one.
  std::vector<std::string> flags{"--model", tiny_mixtral_dir(), "--prompt-ids",
                                 "203", "--max-new-tokens", "4",
                                 "--mask-experts", "0,1,2,3,4,5,6"};
  auto masked = flags;
  masked.push_back("--json");
  auto r = generate(masked);
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = json::parse(r.out, "stdout");
  CAF_REQUIRE(doc);
  const auto* degraded = json::find(*doc, "degraded");
  CAF_REQUIRE(degraded != nullptr);
  CAF_CHECK_EQUAL(json::dump(*degraded),
                  R"({"missing_experts":[0,1,2,3,4,5,6],"tokens":4})");
  auto text = generate(flags);
  CAF_REQUIRE_EQUAL(text.exit_code, 0);
  CAF_CHECK_NOT_EQUAL(text.out.find("degraded: experts 0, 1, 2, 3, 4, 5, 6 "
                                    "had no live host; 4 tokens were routed "
                                    "without them"),
                      std::string::npos);
  // Without a mask nothing is degraded.
  auto full = generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "203",
                        "--max-new-tokens", "4", "--json"});
  CAF_REQUIRE_EQUAL(full.exit_code, 0);
  CAF_CHECK_EQUAL(full.out.find("degraded"), std::string::npos);
}

CAF_TEST(generate prints tokens and speed for a person) {
  auto r = generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "1,2,3",
                     "--max-new-tokens", "4"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  CAF_CHECK_NOT_EQUAL(r.out.find("new tokens:"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.out.find("tokens/s"), std::string::npos);
}

CAF_TEST(generate streams tokens with logprobs and stops at stop token ids) {
  auto r = generate({"--model", tiny_mixtral_dir(), "--prompt-ids", "203",
                     "--max-new-tokens", "6", "--stream", "--logprobs", "2",
                     "--stop-token-ids", "288"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  // Greedy: 170 then 288, the stop token; each the most likely at its place.
  CAF_CHECK_EQUAL(r.out.rfind("sequence 0: 170 logprob -", 0), 0u);
  CAF_CHECK_NOT_EQUAL(r.out.find(" top 170 -"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.out.find("\nsequence 0: 288 logprob -"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.out.find("\nsequence 0 finished: stop\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.out.find("new tokens: 170 288\n"), std::string::npos);
  CAF_CHECK_NOT_EQUAL(r.out.find("stopped by stop"), std::string::npos);
}

CAF_TEST(bad prompts exit with code 2 and one line) {
  auto model = tiny_mixtral_dir();
  check_bad_input(generate({"--model", model, "--prompt-ids", "1,320"}),
                  {"token id 320", "outside [0, 320)"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "-5"}),
                  {"token id -5"});
  check_bad_input(generate({"--model", model, "--prompt-ids", ""}),
                  {"--prompt-ids"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1,,2"}),
                  {"--prompt-ids"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1,x"}),
                  {"--prompt-ids", "'x'"});
  std::string long_prompt = "1";
  for (int i = 0; i < 1024; ++i)
    long_prompt += ",1";
  check_bad_input(generate({"--model", model, "--prompt-ids", long_prompt}),
                  {"1025 tokens exceed the model's context of 1024"});
}

CAF_TEST(bad flags exit with code 2 and one line) {
  auto model = tiny_mixtral_dir();
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--max-new-token", "3"}),
    {"--max-new-token", "did you mean '--max-new-tokens'"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--max-new-tokens", "-1"}),
    {"--max-new-tokens"});
  check_bad_input(generate({"--model", model, "--prompt-ids"}),
                  {"--prompt-ids: missing value"});
  check_bad_input(generate({"--prompt-ids", "1"}), {"--model: missing"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1", "stray"}),
                  {"'stray'"});
  check_bad_input(run_process({volt_node_binary(), "frobnicate"}),
                  {"unknown subcommand"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--top-p", "1.5"}),
    {"--top-p"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--temperature", "x"}),
    {"--temperature", "'x'"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--top-p", "0"}),
    {"top_p"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1", "--n", "0"}),
                  {"--n"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--n", "65"}), {"--n"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--device", "gpu"}),
    {"--device: expected cpu or cuda:N, got 'gpu'"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1",
                            "--quantization", "int4"}),
                  {"--quantization", "'int4'"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1", "--stream",
                            "--json"}),
                  {"--stream and --json: give one, not both"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--logprobs", "2"}),
    {"--logprobs: needs --stream"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1", "--stream",
                            "--logprobs", "21"}),
                  {"--logprobs"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1",
                            "--stop-token-ids", "2,320"}),
                  {"stop_token_ids: token id 320 at index 1"});
  // Outputs only the JSON has: asked without it, they would be computed and
  // never shown.
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--all-logits"}),
    {"--all-logits: needs --json"});
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--router-topk"}),
    {"--router-topk: needs --json"});
  // The log level from the environment, when no flag gives it.
  check_bad_input(generate({"--model", model, "--prompt-ids", "1"},
                           {"VOLT_LOG_LEVEL=loud"}),
                  {"environment: VOLT_LOG_LEVEL: unknown level 'loud'"});
  check_bad_input(run_process({volt_node_binary(), "--config", "x.toml"},
                              std::chrono::seconds{30},
                              {"VOLT_LOG_LEVEL=verbose"}),
                  {"environment: VOLT_LOG_LEVEL: unknown level 'verbose'"});
  auto quiet = generate({"--model", model, "--prompt-ids", "1",
                         "--max-new-tokens", "1", "--log-level", "info"},
                        {"VOLT_LOG_LEVEL=bogus"});
  CAF_CHECK_EQUAL(quiet.exit_code, 0); // the flag wins
  check_bad_input(generate({"--model", model, "--prompt-ids", "1",
                            "--mask-experts", "9"}),
                  {"--mask-experts: expert 9 is outside the model (8 "
                   "experts)"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1",
                            "--mask-experts", "2,2"}),
                  {"--mask-experts: expert 2 is listed twice"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1",
                            "--mask-experts", "0,1,2,3,4,5,6,7"}),
                  {"--mask-experts: every expert of the model is masked"});
  check_bad_input(generate({"--model", model, "--prompt-ids", "1",
                            "--mask-experts", "1,x"}),
                  {"--mask-experts", "'x'"});
  check_bad_input(generate({"--connect", "127.0.0.1:1", "--prompt-ids", "1",
                            "--mask-experts", "1"}),
                  {"--mask-experts: needs --model"});
  // No such device here: without CUDA, without a GPU, or with fewer GPUs.
  check_bad_input(
    generate({"--model", model, "--prompt-ids", "1", "--device", "cuda:99"}),
    {"--device cuda:99"});
}

CAF_TEST(bench model times a whole model and refuses bad flags) {
  auto bench = [](std::vector<std::string> flags) {
    std::vector<std::string> argv{volt_node_binary(), "bench", "model",
                                  "--model", tiny_mixtral_dir()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return run_process(argv);
  };
  // On the CPU: no floors (no card to measure), the CPU check compares the
  // executor with itself.
  auto r = bench({"--device", "cpu", "--batch", "1,2", "--prompt", "8,16",
                  "--decode-prompt", "4", "--new-tokens", "3", "--check-cpu",
                  "4", "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = json::parse(r.out, "stdout");
  CAF_REQUIRE(doc);
  CAF_CHECK_EQUAL(doc->at("card").get<std::string>(), "cpu");
  CAF_CHECK_EQUAL(doc->at("prefill").size(), 2u);
  CAF_CHECK_EQUAL(doc->at("decode").size(), 2u);
  CAF_CHECK_EQUAL(doc->at("cpu_logits_rel_error").get<double>(), 0.0);
  for (const auto& row : doc->at("decode"))
    CAF_CHECK_GREATER(row.at("step_ms").get<double>(), 0.0);
  check_bad_input(bench({"--prompt", "2000"}),
                  {"2000 tokens exceed the model's context of 1024"});
  check_bad_input(bench({"--batch", "0"}), {"--batch"});
  check_bad_input(bench({"--new-tokens", "1"}), {"--new-tokens"});
  check_bad_input(bench({"--prefill-attention", "flash"}),
                  {"--prefill-attention: expected tensor-cores or simt, got "
                   "'flash'"});
  check_bad_input(bench({"--chained-launch", "maybe"}),
                  {"--chained-launch: expected on or off, got 'maybe'"});
  check_bad_input(bench({"--dense-decode-rows", "-1"}),
                  {"--dense-decode-rows"});
  check_bad_input(bench({"--quantization", "int4", "--prompt", "8"}),
                  {"--quantization", "'int4'"});
  check_bad_input(bench({"--device", "cuda:99", "--prompt", "8"}),
                  {"--device cuda:99"});
}

CAF_TEST(bench serve prints one result per concurrency level as json) {
  auto r = run_process({volt_node_binary(), "bench", "serve", "--model",
                        tiny_mixtral_dir(), "--concurrency", "1,3",
                        "--prompt-tokens", "5", "--new-tokens", "3",
                        "--shared-prefix", "2", "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = json::parse(r.out, "stdout");
  CAF_REQUIRE(doc);
  CAF_CHECK_EQUAL(doc->at("prompt_tokens").get<int64_t>(), 5);
  CAF_CHECK_EQUAL(doc->at("new_tokens").get<int64_t>(), 3);
  const auto& results = doc->at("results");
  CAF_REQUIRE_EQUAL(results.size(), 2u);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& res = results[i];
    CAF_CHECK_EQUAL(res.at("concurrency").get<int64_t>(), i == 0 ? 1 : 3);
    CAF_CHECK_GREATER(res.at("tokens_per_second").get<double>(), 0.0);
    CAF_CHECK_LESS_OR_EQUAL(res.at("p50_ms_per_token").get<double>(),
                            res.at("p99_ms_per_token").get<double>());
  }
}

CAF_TEST(bench serve refuses bad flags with code 2 and one line) {
  auto bench = [](std::vector<std::string> flags) {
    std::vector<std::string> argv{volt_node_binary(), "bench", "serve",
                                  "--model", tiny_mixtral_dir()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return run_process(argv);
  };
  check_bad_input(bench({"--concurrency", "0"}), {"--concurrency"});
  check_bad_input(bench({"--concurrency", "1,x"}), {"--concurrency", "'x'"});
  check_bad_input(bench({"--new-tokens", "0"}), {"--new-tokens"});
  check_bad_input(bench({"--prompt-tokens", "8", "--shared-prefix", "9"}),
                  {"--shared-prefix 9 exceeds --prompt-tokens 8"});
  check_bad_input(bench({"--prompt-tokens", "1000", "--new-tokens", "25"}),
                  {"--prompt-tokens 1000 + --new-tokens 25",
                   "context of 1024"});
  check_bad_input(bench({"--compute-threads", "-1"}), {"--compute-threads"});
  check_bad_input(bench({"--rows-per-part", "4097"}), {"--rows-per-part"});
  check_bad_input(bench({"--device", "gpu"}),
                  {"--device: expected cpu or cuda:N, got 'gpu'"});
  check_bad_input(bench({"--quantization", "int4"}),
                  {"--quantization", "'int4'"});
  // No such device here: without CUDA, without a GPU, or with fewer GPUs.
  check_bad_input(bench({"--device", "cuda:99", "--concurrency", "1"}),
                  {"--device cuda:99"});
}

CAF_TEST(bad checkpoints exit with code 2 and name the file) {
  temp_dir dir;
  check_bad_input(generate({"--model", dir.file("nope"), "--prompt-ids", "1"}),
                  {"nope"});
  // config.json missing.
  check_bad_input(generate({"--model", dir.path(), "--prompt-ids", "1"}),
                  {"config.json"});
  // Truncated weights.
  auto cfg = read_text(tiny_mixtral_dir() + "/config.json");
  auto weights = read_text(tiny_mixtral_dir() + "/model.safetensors");
  write_text(dir.file("config.json"), cfg);
  write_text(dir.file("model.safetensors"),
             weights.substr(0, weights.size() / 2));
  check_bad_input(generate({"--model", dir.path(), "--prompt-ids", "1"}),
                  {"model.safetensors"});
  // Corrupt header.
  auto corrupt = weights;
  corrupt[10] = '#';
  write_text(dir.file("model.safetensors"), corrupt);
  check_bad_input(generate({"--model", dir.path(), "--prompt-ids", "1"}),
                  {"model.safetensors"});
  // A missing tensor.
  auto tensors = copy_tensors(tiny_mixtral_dir());
  tensors.erase(
    std::remove_if(tensors.begin(), tensors.end(),
                   [](auto& t) {
                     return t.name == "model.layers.1.self_attn.k_proj.weight";
                   }),
    tensors.end());
  CAF_REQUIRE(!write_safetensors(dir.file("model.safetensors"), tensors));
  check_bad_input(generate({"--model", dir.path(), "--prompt-ids", "1"}),
                  {"model.layers.1.self_attn.k_proj.weight"});
}

CAF_TEST(bad node configuration exits with code 2 and names file and key) {
  temp_dir dir;
  auto file = dir.file("node.toml");
  write_text(
    file,
    "[node]\nrole = \"standalone\"\n[network]\nport = 70000\n[model]\npath = \""
      + tiny_mixtral_dir() + "\"\n");
  check_bad_input(run_process({volt_node_binary(), "--config", file}),
                  {"node.toml", "port"});
  write_text(file, "[node\nrole = 1\n");
  check_bad_input(run_process({volt_node_binary(), "--config", file}),
                  {"node.toml:1:"});
  write_text(
    file,
    "[node]\nrole = \"worker\"\n[worker]\nexperts = [0, 9]\n[model]\npath = \""
      + tiny_mixtral_dir() + "\"\n[security]\ninsecure = true\n");
  check_bad_input(run_process({volt_node_binary(), "--config", file}),
                  {"node.toml", "[worker] experts", "expert 9"});
  check_bad_input(
    run_process({volt_node_binary(), "--config", dir.file("missing.toml")}),
    {"missing.toml"});
}

CAF_TEST(a standalone node logs ready and exits 0 on a termination signal) {
  temp_dir dir;
  auto file = dir.file("node.toml");
  write_text(
    file,
    "[node]\nid = \"cli-test\"\n[network]\nhost = \"127.0.0.1\"\nport = 7700\n"
    "[model]\npath = \""
      + tiny_mixtral_dir() + "\"\n[security]\ninsecure = true\n");
  // The port comes from the environment, overriding the file: a free one (a
  // port derived from the pid collided with other tests' ephemeral ports).
  auto port = std::to_string(free_port());
  child_process node{{volt_node_binary(), "--config", file},
                     {"VOLT_NETWORK_PORT=" + port}};
  CAF_REQUIRE(node.wait_for_stderr("ready", std::chrono::seconds{30}));
  CAF_CHECK_NOT_EQUAL(node.err().find("127.0.0.1:" + port), std::string::npos);
  node.signal(SIGTERM);
  CAF_CHECK_EQUAL(node.wait(std::chrono::seconds{10}), 0);
}

CAF_TEST(a text prompt gives the reference continuation as text) {
  const auto& c = load_text_reference().cases[4];
  auto r = generate({"--model", text_model_dir(), "--prompt", c.prompt,
                     "--max-new-tokens",
                     std::to_string(c.greedy_new_tokens.size()), "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = nlohmann::json::parse(r.out);
  CAF_CHECK_EQUAL(doc["new_tokens"].get<std::vector<int32_t>>(),
                  c.greedy_new_tokens);
  CAF_CHECK_EQUAL(doc["prompt_tokens"], c.input_ids.size());
  auto text = doc["text"].get<std::string>();
  CAF_CHECK(text == c.greedy_text || text == " " + c.greedy_text);
  // For a person: the text, then the usual summary.
  auto plain = generate({"--model", text_model_dir(), "--prompt", c.prompt,
                         "--max-new-tokens",
                         std::to_string(c.greedy_new_tokens.size())});
  CAF_REQUIRE_EQUAL(plain.exit_code, 0);
  CAF_CHECK_EQUAL(plain.out.rfind(text + "\n\nnew tokens:", 0), 0u);
}

CAF_TEST(a chat message is rendered with the template) {
  auto r = generate({"--model", text_model_dir(), "--chat", "def add(a, b):",
                     "--chat-template", "mistral", "--max-new-tokens", "6",
                     "--n", "2", "--temperature", "1", "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = nlohmann::json::parse(r.out);
  CAF_CHECK(doc["text"].is_string());
  CAF_CHECK_EQUAL(doc["texts"].size(), 2u);
  // [INST] ... [/INST] around the message: more ids than the message alone.
  CAF_CHECK_GREATER(doc["prompt_tokens"].get<size_t>(), 8u);
}

CAF_TEST(text prompts name the flag at fault) {
  check_bad_input(generate({"--model", text_model_dir(), "--prompt", "x",
                            "--prompt-ids", "1"}),
                  {"--prompt-ids, --prompt and --chat: give one of them"});
  check_bad_input(generate({"--model", tiny_mixtral_dir(), "--prompt", "x"}),
                  {"--prompt: " + tiny_mixtral_dir()
                   + " has no tokenizer.model (use --prompt-ids)"});
  check_bad_input(generate({"--connect", "127.0.0.1:1", "--chat", "x"}),
                  {"--chat: with --connect, name the checkpoint folder whose "
                   "tokenizer to use with --tokenizer DIR"});
  check_bad_input(generate({"--model", text_model_dir(), "--chat", "x"}),
                  {"with --chat-template"});
  check_bad_input(generate({"--model", text_model_dir()}),
                  {"--prompt-ids: missing (or --prompt TEXT, or --chat "
                   "MESSAGE)"});
}
