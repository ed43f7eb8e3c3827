#define CAF_SUITE prefetch.routing_trace

// Routing traces: a saved trace reads back as it was, a model deeper than
// the trace repeats its layers, every malformed field is a one-line error
// naming the file and the field, a trace is refused by a model of another
// expert count or vocabulary, and an executor refuses replayed routing of
// the wrong size or with experts outside the model.

#include "prefetch/routing_trace.hpp"

#include "base/error.hpp"
#include "model/routing_mask.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::prefetch;
using namespace volt::test;

namespace {

routing_trace small_trace() {
  routing_trace t;
  t.model = "somewhere";
  t.layers = 2;
  t.experts = 4;
  t.top_k = 2;
  t.tokens = {5, 9, 1};
  // token 0: layer 0 {0, 1}, layer 1 {2, 3}; token 1: {1, 2}, {3, 0}; ...
  t.routing = {0, 1, 2, 3, 1, 2, 3, 0, 2, 3, 0, 1};
  return t;
}

/// The one-line error of loading `text` as a trace.
std::string load_error(const temp_dir& tmp, const std::string& text) {
  auto path = tmp.file("trace.json");
  CAF_REQUIRE(write_text(path, text));
  auto t = load_routing_trace(path);
  CAF_REQUIRE(!t);
  auto what = describe(t.error());
  CAF_CHECK_EQUAL(what.find('\n'), std::string::npos);
  CAF_CHECK_NOT_EQUAL(what.find(path), std::string::npos);
  return what;
}

bool has(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos)
    return true;
  CAF_MESSAGE("'" << part << "' not in: " << text);
  return false;
}

} // namespace

CAF_TEST(a saved trace reads back as it was) {
  temp_dir tmp;
  auto path = tmp.file("trace.json");
  auto t = small_trace();
  CAF_REQUIRE(!save_routing_trace(t, path));
  auto back = load_routing_trace(path);
  CAF_REQUIRE(back);
  CAF_CHECK_EQUAL(back->model, "somewhere");
  CAF_CHECK_EQUAL(back->layers, 2);
  CAF_CHECK_EQUAL(back->experts, 4);
  CAF_CHECK_EQUAL(back->top_k, 2);
  CAF_CHECK_EQUAL(back->tokens, t.tokens);
  CAF_CHECK_EQUAL(back->routing, t.routing);
}

CAF_TEST(a deeper model repeats the trace layers) {
  auto t = small_trace();
  CAF_CHECK_EQUAL(t.experts_of(1, 0)[0], 1);
  CAF_CHECK_EQUAL(t.experts_of(1, 1)[0], 3);
  CAF_CHECK_EQUAL(t.experts_of(1, 2)[1], 2);
  CAF_CHECK_EQUAL(t.experts_of(2, 3)[0], 0);
  CAF_CHECK_EQUAL(t.experts_of(2, 3)[1], 1);
}

CAF_TEST(malformed traces are one line errors naming the field) {
  temp_dir tmp;
  const std::string head
    = R"({"format": "volt-routing-trace", "version": 1, "layers": 2, )"
      R"("experts": 4, "top_k": 2, )";
  CAF_CHECK(has(load_error(tmp, "[1, 2]"), "expected a JSON object"));
  CAF_CHECK(has(load_error(tmp, "{\"tokens\": [1]"), "trace.json:1:"));
  CAF_CHECK(has(load_error(tmp, R"({"format": "other"})"), "\"format\""));
  CAF_CHECK(has(load_error(tmp, R"({"format": "volt-routing-trace",
                                   "version": 2})"),
                "\"version\""));
  CAF_CHECK(has(load_error(tmp, head + R"("tokens": [], "routing": []})"),
                "\"tokens\": no tokens"));
  CAF_CHECK(has(load_error(tmp, head + R"("tokens": [1, -2], "routing": []})"),
                "\"tokens\"[1]"));
  CAF_CHECK(has(load_error(tmp, head + R"("tokens": [1], "routing": [0, 1, 2, 4]})"),
                "\"routing\"[3]: expected an integer in [0, 4)"));
  CAF_CHECK(has(load_error(tmp, head + R"("tokens": [1], "routing": [0, 1, 2]})"),
                "3 expert ids, expected 4"));
  CAF_CHECK(has(load_error(tmp, R"({"format": "volt-routing-trace",
                                   "version": 1, "layers": 2, "experts": 4,
                                   "top_k": 5})"),
                "\"top_k\": expected an integer in [1, 4]"));
  CAF_CHECK(has(load_error(tmp, R"({"format": "volt-routing-trace",
                                   "version": 1, "experts": 4})"),
                "\"layers\""));
}

CAF_TEST(a model of another expert count or vocabulary refuses a trace) {
  auto t = small_trace();
  model_config cfg;
  cfg.num_local_experts = 4;
  cfg.num_experts_per_tok = 2;
  cfg.vocab_size = 10;
  CAF_CHECK(!check_trace_fits(t, cfg, "t.json"));
  cfg.num_local_experts = 8;
  auto err = check_trace_fits(t, cfg, "t.json");
  CAF_REQUIRE(err);
  CAF_CHECK(has(describe(err), "routing trace t.json: recorded with 4 experts, "
                               "top-2; the model has 8, top-2"));
  cfg.num_local_experts = 4;
  cfg.vocab_size = 9;
  err = check_trace_fits(t, cfg, "t.json");
  CAF_REQUIRE(err);
  CAF_CHECK(has(describe(err), "\"tokens\"[1]: 9 is outside the model's "
                               "vocabulary of 9 tokens"));
}

CAF_TEST(an executor refuses replayed routing of the wrong size or experts) {
  // 2 layers, 3 rows, top-2, 4 experts.
  std::vector<int32_t> ok(12, 3);
  CAF_CHECK(!check_replayed_routing({}, 2, 3, 2, 4));
  CAF_CHECK(!check_replayed_routing(ok, 2, 3, 2, 4));
  auto short_one = ok;
  short_one.pop_back();
  auto err = check_replayed_routing(short_one, 2, 3, 2, 4);
  CAF_REQUIRE(err);
  CAF_CHECK(has(describe(err), "11 expert ids, the step needs 12"));
  auto outside = ok;
  outside[7] = 4;
  err = check_replayed_routing(outside, 2, 3, 2, 4);
  CAF_REQUIRE(err);
  CAF_CHECK(has(describe(err), "id 7 is expert 4, outside the model (4 experts)"));
  outside[7] = -1;
  CAF_CHECK(check_replayed_routing(outside, 2, 3, 2, 4));
}
