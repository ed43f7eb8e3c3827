#define CAF_SUITE net.worker_record

// Worker records come from Redis, i.e. from outside: they round-trip, and
// every malformed field is an error naming it, never a crash.

#include "net/worker_record.hpp"

#include "base/error.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

CAF_TEST(records round trip through json) {
  worker_record x{"w-1", "10.0.0.7", 7801, {0, 3, 7}, "cuda:1", 123.5};
  auto y = parse_worker_record(to_json(x));
  CAF_REQUIRE(y);
  CAF_CHECK_EQUAL(y->id, "w-1");
  CAF_CHECK_EQUAL(y->host, "10.0.0.7");
  CAF_CHECK_EQUAL(y->port, 7801);
  CAF_CHECK_EQUAL(y->experts, std::vector<uint32_t>({0, 3, 7}));
  CAF_CHECK_EQUAL(y->device, "cuda:1");
  CAF_CHECK_LESS(std::abs(y->load - 123.5), 1e-9);
  CAF_CHECK_EQUAL(worker_record_key("w-1"), "volt:worker:w-1");
}

CAF_TEST(malformed records name the field) {
  std::vector<std::pair<std::string, std::string>> cases = {
    {"not json", "worker record"},
    {"[1, 2]", "expected a JSON object"},
    {R"({"host":"h","port":1,"experts":[],"device":"cpu"})", "'id'"},
    {R"({"id":"a","port":1,"experts":[],"device":"cpu"})", "'host'"},
    {R"({"id":"a","host":"h","port":0,"experts":[],"device":"cpu"})", "'port'"},
    {R"({"id":"a","host":"h","port":70000,"experts":[],"device":"cpu"})",
     "'port'"},
    {R"({"id":"a","host":"h","port":"1","experts":[],"device":"cpu"})",
     "'port'"},
    {R"({"id":"a","host":"h","port":1,"experts":[-1],"device":"cpu"})",
     "'experts'"},
    {R"({"id":"a","host":"h","port":1,"experts":"0,1","device":"cpu"})",
     "'experts'"},
    {R"({"id":"a","host":"h","port":1,"experts":[1]})", "'device'"},
    {R"({"id":"a","host":"h","port":1,"experts":[1],"device":"cpu",)"
     R"("load":"x"})",
     "'load'"},
  };
  for (auto& [text, fragment] : cases) {
    auto x = parse_worker_record(text);
    CAF_REQUIRE(!x);
    auto what = describe(x.error());
    CAF_CHECK_NOT_EQUAL(what.find(fragment), std::string::npos);
    CAF_CHECK_EQUAL(what.find('\n'), std::string::npos);
  }
}
