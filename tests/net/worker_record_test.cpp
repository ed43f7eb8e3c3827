#define CAF_SUITE net.worker_record

// Worker records come from Redis, i.e. from outside: they round-trip, and
// every malformed field is an error naming it, never a crash. With a cluster
// secret they are signed, and a record that is unsigned, forged, moved to
// another key or expired is refused.

#include "net/signed_worker_record.hpp"
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

// -- signed records ------------------------------------------------------------

namespace {

const std::string secret = "0123456789abcdef0123456789abcdef";
const worker_record signed_example{"w-1", "10.0.0.7", 7801, {0, 3}, "cpu", 2.5};
const std::string key = worker_record_key("w-1");
constexpr int64_t now = 1'700'000'000'000;

/// The refusal of `value` under `key` at `now`, "" when it was accepted.
std::string refusal(const std::string& value, const std::string& with_secret,
                    const std::string& under = key, int64_t at = now) {
  auto x = open_worker_record(under, value, with_secret, at);
  if (x)
    return {};
  auto what = describe(x.error());
  CAF_CHECK_EQUAL(what.find('\n'), std::string::npos);
  CAF_CHECK_EQUAL(what.find(secret), std::string::npos);
  CAF_CHECK_EQUAL(what.rfind(under + ": ", 0), 0u);
  return what;
}

/// `text` with the first `from` replaced by `to`.
std::string replaced(std::string text, const std::string& from,
                     const std::string& to) {
  auto at = text.find(from);
  CAF_REQUIRE_NOT_EQUAL(at, std::string::npos);
  return text.replace(at, from.size(), to);
}

} // namespace

CAF_TEST(a signed record opens with its secret until it expires) {
  auto value = seal_worker_record(signed_example, key, secret, now + 600);
  CAF_CHECK_NOT_EQUAL(value.find("\"expires_ms\":1700000000600"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(value.find("\"hmac\":\""), std::string::npos);
  auto x = open_worker_record(key, value, secret, now);
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->host, "10.0.0.7");
  CAF_CHECK_EQUAL(x->port, 7801);
  CAF_CHECK_EQUAL(x->experts, std::vector<uint32_t>({0, 3}));
  CAF_CHECK(open_worker_record(key, value, secret, now + 600));
  CAF_CHECK_NOT_EQUAL(refusal(value, secret, key, now + 601)
                        .find("expired 1 ms ago"),
                      std::string::npos);
  // Without a secret the record is unsigned JSON, as before.
  auto plain = seal_worker_record(signed_example, key, "", now);
  CAF_CHECK_EQUAL(plain, to_json(signed_example));
}

CAF_TEST(records that are unsigned or forged are refused with a secret) {
  auto value = seal_worker_record(signed_example, key, secret, now + 600);
  CAF_CHECK_NOT_EQUAL(refusal(to_json(signed_example), secret)
                        .find("not signed, and [security] cluster_secret is "
                              "set"),
                      std::string::npos);
  auto other = seal_worker_record(signed_example, key,
                                  "another secret of 32 characters!", now + 600);
  CAF_CHECK_NOT_EQUAL(refusal(other, secret).find("wrong signature"),
                      std::string::npos);
  // Any field changed after signing: another host, more experts, a later
  // expiry.
  for (auto [from, to] : std::vector<std::pair<std::string, std::string>>{
         {"10.0.0.7", "10.6.6.6"},
         {"[0,3]", "[0,1,2,3]"},
         {"1700000000600", "1800000000600"},
         {"\"load\":2.5", "\"load\":3"}})
    CAF_CHECK_NOT_EQUAL(refusal(replaced(value, from, to), secret)
                          .find("wrong signature"),
                        std::string::npos);
  // A valid record copied under another key, and one naming another id.
  auto evil = worker_record_key("evil");
  CAF_CHECK_NOT_EQUAL(refusal(value, secret, evil).find("wrong signature"),
                      std::string::npos);
  auto misnamed = seal_worker_record(signed_example, evil, secret, now + 600);
  CAF_CHECK_NOT_EQUAL(refusal(misnamed, secret, evil)
                        .find("names the id 'w-1', not the one its key ends "
                              "with"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(refusal(replaced(value, "\"hmac\":\"", "\"hmac\":\"zz"),
                              secret)
                        .find("'hmac' must be 64 hex digits"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(refusal("[1]", secret).find("expected a JSON object"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(refusal("{\"hmac\": ", secret), "");
}

CAF_TEST(without a secret records are read whether signed or not) {
  auto value = seal_worker_record(signed_example, key, secret, now - 1);
  auto x = open_worker_record(key, value, "", now);
  CAF_REQUIRE(x);
  CAF_CHECK_EQUAL(x->id, "w-1");
  CAF_CHECK(open_worker_record(key, to_json(signed_example), "", now));
  CAF_CHECK_NOT_EQUAL(refusal(to_json(signed_example), "",
                              worker_record_key("w-2"))
                        .find("names the id 'w-1'"),
                      std::string::npos);
}
