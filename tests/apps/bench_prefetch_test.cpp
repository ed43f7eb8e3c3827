#define CAF_SUITE apps.bench_prefetch

// `volt-node bench prefetch` on the text fixture: the shape of its JSON
// (every predictor per layer and overall, counts that add up) and of its
// table, the same numbers from --ids as from the text's tokens, a recorded
// routing trace replayed as the routing (the replay's own recording equals
// the trace given, also when it is not what the routers would choose), and
// one-line errors for bad flags, id files and traces.

#include <nlohmann/json.hpp>

#include "model/json.hpp"
#include "tests/apps/cli_checks.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/process.hpp"
#include "tests/test_dsl.hpp"
#include "tests/text/text_fixture.hpp"

using namespace volt;
using namespace volt::test;

namespace {

/// Python source the text fixture did not see in training.
std::string unseen_python() {
  return std::string{VOLT_TEST_DATA_DIR}
         + "/unseen-python/volt_scripts.py.txt";
}

run_result bench(std::vector<std::string> flags) {
  std::vector<std::string> argv{volt_node_binary(), "bench", "prefetch",
                                "--model", text_model_dir()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  return run_process(argv, std::chrono::seconds{120});
}

const std::vector<std::string> predictors = {"ngram", "cross_layer",
                                             "combined", "previous"};

} // namespace

CAF_TEST(json has every predictor per layer and overall) {
  auto r = bench({"--text", unseen_python(), "--tokens", "150", "--window",
                  "64", "--batch", "2", "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto doc = json::parse(r.out, "stdout");
  CAF_REQUIRE(doc);
  CAF_CHECK_EQUAL(doc->at("tokens").get<int64_t>(), 150);
  // Windows of 64, 64 and 22 tokens, two at a time: 64 + 22 steps.
  CAF_CHECK_EQUAL(doc->at("steps").get<int64_t>(), 86);
  CAF_CHECK_EQUAL(doc->at("top_k").get<int64_t>(), 2);
  CAF_CHECK_EQUAL(doc->at("max_staged").get<int64_t>(), 4);
  const auto layers = doc->at("layers").get<int64_t>();
  CAF_CHECK_EQUAL(layers, 4);
  const auto& all = doc->at("predictors");
  CAF_CHECK_EQUAL(all.size(), predictors.size());
  for (const auto& name : predictors) {
    const auto& p = all.at(name);
    CAF_REQUIRE_EQUAL(p.at("layers").size(), static_cast<size_t>(layers));
    int64_t predicted = 0;
    int64_t hits = 0;
    int64_t actual = 0;
    for (int64_t l = 0; l < layers; ++l) {
      const auto& row = p.at("layers").at(static_cast<size_t>(l));
      CAF_CHECK_EQUAL(row.at("layer").get<int64_t>(), l);
      predicted += row.at("predicted").get<int64_t>();
      hits += row.at("hits").get<int64_t>();
      actual += row.at("actual").get<int64_t>();
      CAF_CHECK_LESS_OR_EQUAL(row.at("mean_staged").get<double>(), 4.0);
    }
    const auto& overall = p.at("overall");
    CAF_CHECK_EQUAL(overall.at("predicted").get<int64_t>(), predicted);
    CAF_CHECK_EQUAL(overall.at("hits").get<int64_t>(), hits);
    CAF_CHECK_EQUAL(overall.at("actual").get<int64_t>(), actual);
    // Each step routes 2 to 4 distinct experts per layer (two rows, top-2).
    CAF_CHECK_GREATER_OR_EQUAL(actual, 86 * layers * 2);
    CAF_CHECK_LESS_OR_EQUAL(actual, 86 * layers * 4);
    auto recall = overall.at("recall").get<double>();
    auto precision = overall.at("precision").get<double>();
    CAF_CHECK_LESS(std::abs(recall - static_cast<double>(hits) / actual),
                   1e-4);
    CAF_CHECK_LESS(std::abs(precision - static_cast<double>(hits) / predicted),
                   1e-4);
  }
}

CAF_TEST(ids give what the text gives and the table has every layer) {
  temp_dir tmp;
  auto text = R"(def main(argv):
    for name in argv[1:]:
        print(name.upper())
    return 0
)";
  auto text_file = tmp.file("prompt.py");
  CAF_REQUIRE(write_text(text_file, text));
  auto ids = text_tokenizer()->encode(text, true);
  std::string listed;
  for (size_t i = 0; i < ids.size(); ++i)
    listed += (i % 8 == 0 ? "\n" : ", ") + std::to_string(ids[i]);
  auto ids_file = tmp.file("ids.txt");
  CAF_REQUIRE(write_text(ids_file, listed));
  auto from_text = bench({"--text", text_file, "--json"});
  auto from_ids = bench({"--ids", ids_file, "--json"});
  CAF_REQUIRE_EQUAL(from_text.exit_code, 0);
  CAF_REQUIRE_EQUAL(from_ids.exit_code, 0);
  auto a = json::parse(from_text.out, "text");
  auto b = json::parse(from_ids.out, "ids");
  CAF_REQUIRE(a && b);
  CAF_CHECK_EQUAL(a->at("tokens").get<size_t>(), ids.size());
  CAF_CHECK_EQUAL(a->at("predictors").dump(), b->at("predictors").dump());
  auto table = bench({"--ids", ids_file});
  CAF_REQUIRE_EQUAL(table.exit_code, 0);
  for (auto line : {"\n0 ", "\n1 ", "\n2 ", "\n3 ", "\noverall ", "ngram",
                    "cross_layer", "combined", "previous", "us per step"})
    CAF_CHECK_NOT_EQUAL(table.out.find(line), std::string::npos);
}

CAF_TEST(bad flags and id files are one-line errors) {
  temp_dir tmp;
  auto bad_id = tmp.file("bad.txt");
  CAF_REQUIRE(write_text(bad_id, "1, 2, 3\n4, 5000\n"));
  auto junk = tmp.file("junk.txt");
  CAF_REQUIRE(write_text(junk, "1 2 three"));
  auto empty = tmp.file("empty.txt");
  CAF_REQUIRE(write_text(empty, " \n"));
  check_bad_input(bench({}), {"--text, --ids, --routing-trace: give one of them"});
  check_bad_input(bench({"--text", unseen_python(), "--ids", bad_id}),
                  {"--text, --ids, --routing-trace: give one of them"});
  check_bad_input(bench({"--ids", bad_id}),
                  {"--ids " + bad_id + ": token 4: 5000 is outside the "
                   "vocabulary of 1024 tokens"});
  check_bad_input(bench({"--ids", junk}),
                  {"--ids " + junk + ": token 2: expected an id", "'three'"});
  check_bad_input(bench({"--ids", empty}), {"--ids " + empty + ": no tokens"});
  check_bad_input(bench({"--ids", tmp.file("missing.txt")}),
                  {"missing.txt"});
  check_bad_input(bench({"--ids", bad_id, "--window", "2000"}),
                  {"--window", "2000"});
  check_bad_input(bench({"--ids", bad_id, "--max-staged", "9"}),
                  {"--max-staged", "9"});
  check_bad_input(bench({"--ids", bad_id, "--ngram-order", "0"}),
                  {"--ngram-order"});
  check_bad_input(bench({"--ids", bad_id, "--min-chance-percent", "101"}),
                  {"--min-chance-percent"});
}

CAF_TEST(a recorded routing trace replays as the routing) {
  temp_dir tmp;
  auto recorded = tmp.file("recorded.json");
  auto run = bench({"--text", unseen_python(), "--tokens", "120", "--window",
                    "40", "--batch", "2", "--record-routing", recorded,
                    "--json"});
  CAF_REQUIRE_EQUAL(run.exit_code, 0);
  auto trace = json::parse_file(recorded);
  CAF_REQUIRE(trace);
  CAF_CHECK_EQUAL(trace->at("format").get<std::string>(), "volt-routing-trace");
  CAF_CHECK_EQUAL(trace->at("layers").get<int64_t>(), 4);
  CAF_CHECK_EQUAL(trace->at("experts").get<int64_t>(), 8);
  CAF_CHECK_EQUAL(trace->at("top_k").get<int64_t>(), 2);
  CAF_REQUIRE_EQUAL(trace->at("tokens").size(), 120u);
  CAF_REQUIRE_EQUAL(trace->at("routing").size(), 120u * 4 * 2);
  // Each token's two experts per layer are distinct, as top-2 gives them.
  const auto& routing = trace->at("routing");
  for (size_t i = 0; i < routing.size(); i += 2)
    CAF_CHECK_NOT_EQUAL(routing.at(i).get<int>(), routing.at(i + 1).get<int>());
  // The same trace replayed routes as the routers did: the same scores.
  auto again = tmp.file("again.json");
  auto replayed = bench({"--routing-trace", recorded, "--window", "40",
                         "--batch", "2", "--record-routing", again, "--json"});
  CAF_REQUIRE_EQUAL(replayed.exit_code, 0);
  auto a = json::parse(run.out, "recorded");
  auto b = json::parse(replayed.out, "replayed");
  CAF_REQUIRE(a && b);
  CAF_CHECK_EQUAL(a->at("predictors").at("previous").dump(),
                  b->at("predictors").at("previous").dump());
  CAF_CHECK_EQUAL(b->at("routing_trace").get<std::string>(), recorded);
  // Every expert moved to the next one: not what the routers choose, and
  // what the replay then routes to.
  auto moved = *trace;
  for (auto& id : moved.at("routing"))
    id = (id.get<int>() + 1) % 8;
  auto moved_file = tmp.file("moved.json");
  CAF_REQUIRE(write_text(moved_file, json::dump(moved)));
  auto moved_again = tmp.file("moved_again.json");
  auto r = bench({"--routing-trace", moved_file, "--window", "40", "--batch",
                  "3", "--record-routing", moved_again, "--json"});
  CAF_REQUIRE_EQUAL(r.exit_code, 0);
  auto out = json::parse_file(moved_again);
  CAF_REQUIRE(out);
  CAF_CHECK_EQUAL(out->at("routing").dump(), moved.at("routing").dump());
  CAF_CHECK_NOT_EQUAL(out->at("routing").dump(), routing.dump());
  CAF_CHECK_EQUAL(out->at("tokens").dump(), trace->at("tokens").dump());
}

CAF_TEST(bad routing traces and device flags are one-line errors) {
  temp_dir tmp;
  auto four = tmp.file("four.json");
  CAF_REQUIRE(write_text(four, R"({"format": "volt-routing-trace",
    "version": 1, "layers": 1, "experts": 4, "top_k": 2, "tokens": [3],
    "routing": [0, 1]})"));
  auto beyond = tmp.file("beyond.json");
  CAF_REQUIRE(write_text(beyond, R"({"format": "volt-routing-trace",
    "version": 1, "layers": 1, "experts": 8, "top_k": 2, "tokens": [3, 4096],
    "routing": [0, 1, 2, 3]})"));
  auto broken = tmp.file("broken.json");
  CAF_REQUIRE(write_text(broken, R"({"format": "volt-routing-trace",
    "version": 1, "layers": 1, "experts": 8, "top_k": 2, "tokens": [3],
    "routing": [0, 9]})"));
  check_bad_input(bench({"--routing-trace", four}),
                  {"routing trace " + four + ": recorded with 4 experts, "
                   "top-2; the model has 8, top-2"});
  check_bad_input(bench({"--routing-trace", beyond}),
                  {"routing trace " + beyond + ": \"tokens\"[1]: 4096 is "
                   "outside the model's vocabulary of 1024 tokens"});
  check_bad_input(bench({"--routing-trace", broken}),
                  {"routing trace " + broken + ": \"routing\"[1]"});
  check_bad_input(bench({"--routing-trace", tmp.file("none.json")}),
                  {"none.json"});
  check_bad_input(bench({"--routing-trace", four, "--text", unseen_python()}),
                  {"--text, --ids, --routing-trace: give one of them"});
  check_bad_input(bench({"--text", unseen_python(), "--expert-slots", "8"}),
                  {"--expert-slots: needs a CUDA device"});
  check_bad_input(bench({"--text", unseen_python(), "--device", "gpu0"}),
                  {"--device"});
  check_bad_input(bench({"--text", unseen_python(), "--expert-misses",
                         "sometimes"}),
                  {"--expert-misses: unknown mode 'sometimes' (expected auto, "
                   "load or host"});
  check_bad_input(bench({"--text", unseen_python(), "--record-routing",
                         tmp.file("no/such/dir/t.json"), "--tokens", "4"}),
                  {"routing trace " + tmp.file("no/such/dir/t.json")
                   + ": cannot write the file"});
}
