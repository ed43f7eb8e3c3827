#define CAF_SUITE http.api_keys

// API keys ([http] api_keys_file): the key file's format and its errors, the
// Bearer check, and real nodes driven by curl and raw HTTP: 401 in OpenAI's
// error format without a key or with a wrong one, the routes that stay open,
// keep-alive connections that stay in step after a refusal, and keys read
// again when the file changes.

#include <cstdio>

#include <nlohmann/json.hpp>

#include "http/api_keys.hpp"
#include "tests/http/api_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;
using njson = nlohmann::json;

namespace {

const std::string key1 = "sk-volt-test-key-0001";
const std::string key2 = "sk-volt-test-key-0002";

/// Writes `text` to `path` through a rename, as a deployment tool does.
void replace_file(const std::string& path, const std::string& text) {
  write_text(path + ".tmp", text);
  std::rename((path + ".tmp").c_str(), path.c_str());
}

/// The one-line error of parsing `text` ("" when it parsed).
std::string key_file_error(const std::string& text) {
  auto keys = http::parse_api_keys(text, "keys.txt");
  if (keys)
    return {};
  auto what = describe(keys.error());
  CAF_CHECK_EQUAL(what.find('\n'), std::string::npos);
  return what;
}

/// An API node whose [http] api_keys_file holds `keys_text`.
struct keyed_node {
  temp_dir keys_dir;
  std::string keys_file = keys_dir.file("api_keys");
  std::unique_ptr<api_node> node;

  explicit keyed_node(const std::string& keys_text,
                      const std::string& extra = {}) {
    write_text(keys_file, keys_text);
    node = std::make_unique<api_node>("api_keys_file = \"" + keys_file + "\"\n"
                                      + extra);
  }

  std::string url(const std::string& path) const {
    return node->base_url() + path;
  }
};

std::vector<std::string> bearer(const std::string& key) {
  return {"-H", "Authorization: Bearer " + key};
}

/// Checks that `r` is the 401 of OpenAI's format for a bad or missing key.
void check_unauthorized(const http_reply& r, const std::string& fragment) {
  CAF_CHECK_EQUAL(r.status, 401);
  auto doc = njson::parse(r.body, nullptr, false);
  CAF_REQUIRE(!doc.is_discarded() && doc.contains("error"));
  const auto& e = doc["error"];
  CAF_CHECK_EQUAL(e["type"], "invalid_request_error");
  CAF_CHECK_EQUAL(e["code"], "invalid_api_key");
  CAF_CHECK(e["param"].is_null());
  auto message = e["message"].get<std::string>();
  CAF_CHECK_NOT_EQUAL(message.find(fragment), std::string::npos);
  CAF_CHECK_EQUAL(message.find(key1), std::string::npos);
}

/// Sends `requests` on one keep-alive connection to 127.0.0.1:`port`, each
/// once the answer to the one before has come whole (httplib 0.11 does not
/// serve pipelined requests); returns the answers, headers and body.
std::vector<std::string>
one_connection(uint16_t port, const std::vector<std::string>& requests) {
  std::vector<std::string> answers;
  int fd = tcp_connect(port);
  if (fd < 0)
    return answers;
  std::string pending;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  for (const auto& request : requests) {
    (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    // Reads until the headers and Content-Length bytes of body are in.
    size_t whole = std::string::npos;
    while (whole == std::string::npos
           && std::chrono::steady_clock::now() < deadline) {
      auto end = pending.find("\r\n\r\n");
      if (end != std::string::npos) {
        auto at = pending.find("Content-Length: ");
        auto length = at < end ? std::stoul(pending.substr(at + 16)) : 0;
        if (pending.size() >= end + 4 + length)
          whole = end + 4 + length;
      }
      if (whole != std::string::npos)
        break;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0)
        continue;
      char buf[4096];
      auto n = read(fd, buf, sizeof(buf));
      if (n <= 0)
        break;
      pending.append(buf, static_cast<size_t>(n));
    }
    if (whole == std::string::npos)
      break;
    answers.push_back(pending.substr(0, whole));
    pending.erase(0, whole);
  }
  close(fd);
  return answers;
}

const std::string completion
  = R"({"model": "tiny-mixtral-text-a", "prompt": "def", "max_tokens": 2,
        "temperature": 0})";

} // namespace

CAF_TEST(a key file holds one key per line with comments) {
  auto keys = http::parse_api_keys(
    "# production\n\n  " + key1 + "  \r\n" + "#" + key2 + "\n", "keys.txt");
  CAF_REQUIRE(keys);
  CAF_CHECK_EQUAL(keys->size(), 1u);
  CAF_CHECK(constant_time_equal(keys->front(), sha256_of(key1)));
  CAF_CHECK_EQUAL(key_file_error("# only comments\n"),
                  "[http] api_keys_file: keys.txt: holds no key (every "
                  "request would be refused)");
  CAF_CHECK_EQUAL(key_file_error(key1 + "\nshort\n"),
                  "[http] api_keys_file: keys.txt:2: a key has 5 characters; "
                  "keys have 16 to 256 (e.g. `openssl rand -hex 24`)");
  CAF_CHECK_NOT_EQUAL(key_file_error(std::string(257, 'k'))
                        .find("keys.txt:1: "
                              "a key has "
                              "257"),
                      std::string::npos);
  auto spaced = key_file_error(key1 + " # the CI's key\n");
  CAF_CHECK_NOT_EQUAL(spaced.find("keys.txt:1: a key may hold only letters"),
                      std::string::npos);
  CAF_CHECK_EQUAL(spaced.find(key1), std::string::npos);
}

CAF_TEST(authorization needs a bearer key of the file) {
  temp_dir dir;
  write_text(dir.file("keys"), key1 + "\n" + key2 + "\n");
  auto keys = http::api_keys::load(dir.file("keys"));
  CAF_REQUIRE(keys);
  CAF_CHECK_EQUAL((*keys)->size(), 2u);
  auto& k = **keys;
  CAF_CHECK(!http::authorize(k, "Bearer " + key1));
  CAF_CHECK(!http::authorize(k, "bearer " + key2));
  CAF_CHECK(!http::authorize(k, "BEARER  " + key2 + " "));
  auto missing = http::authorize(k, "");
  CAF_REQUIRE(missing);
  CAF_CHECK_EQUAL(missing->status, 401);
  CAF_CHECK_EQUAL(missing->code, "invalid_api_key");
  CAF_CHECK_NOT_EQUAL(missing->message.find("didn't provide an API key"),
                      std::string::npos);
  for (auto header : {"Basic dXNlcjpwYXNz", "Bearer", "Bearer "}) {
    auto refused = http::authorize(k, header);
    CAF_REQUIRE(refused);
    CAF_CHECK_EQUAL(refused->status, 401);
  }
  auto wrong = http::authorize(k, "Bearer " + key1 + "x");
  CAF_REQUIRE(wrong);
  CAF_CHECK_EQUAL(wrong->message, "Incorrect API key provided");
  auto missing_file = http::api_keys::load(dir.file("nope"));
  CAF_REQUIRE(!missing_file);
  CAF_CHECK_NOT_EQUAL(describe(missing_file.error())
                        .find("[http] api_keys_file: " + dir.file("nope")),
                      std::string::npos);
}

CAF_TEST(a node with keys answers 401 without one and serves with one) {
  keyed_node n{"# test keys\n" + key1 + "\n"};
  CAF_REQUIRE(n.node->wait_ready());
  check_unauthorized(curl("POST", n.url("/v1/completions"), completion),
                     "didn't provide an API key");
  check_unauthorized(curl("POST", n.url("/v1/completions"), completion,
                          bearer(key2)),
                     "Incorrect API key provided");
  check_unauthorized(curl("GET", n.url("/v1/models")), "API key");
  check_unauthorized(curl("POST", n.url("/tokenize"), R"({"prompt": "x"})",
                          {"-H", "Authorization: Basic dXNlcjpwYXNz"}),
                     "Bearer");
  // An unknown route or method says nothing about the routes without a key.
  check_unauthorized(curl("GET", n.url("/nope")), "API key");
  check_unauthorized(curl("GET", n.url("/v1/completions")), "API key");
  CAF_CHECK_EQUAL(curl("GET", n.url("/nope"), {}, bearer(key1)).status, 404);
  auto ok = curl("POST", n.url("/v1/completions"), completion, bearer(key1));
  CAF_CHECK_EQUAL(ok.status, 200);
  CAF_CHECK_NOT_EQUAL(ok.body.find("\"choices\""), std::string::npos);
  CAF_CHECK_EQUAL(curl("GET", n.url("/v1/models"), {}, bearer(key1)).status,
                  200);
  // Health checks and Prometheus need no key by default.
  CAF_CHECK_EQUAL(curl("GET", n.url("/health")).status, 200);
  auto metrics = curl("GET", n.url("/metrics"));
  CAF_CHECK_EQUAL(metrics.status, 200);
  // Refusals are counted: two POSTs and the GET to /v1/completions.
  const std::string series = "endpoint=\"/v1/completions\",status=\"401\"} ";
  auto refused = metrics.body.find(series);
  CAF_REQUIRE_NOT_EQUAL(refused, std::string::npos);
  CAF_CHECK_EQUAL(std::atoi(metrics.body.c_str() + refused + series.size()), 3);
  CAF_CHECK(n.node->process().wait_log("requests need one of the 1 API keys",
                                       std::chrono::seconds{1}));
}

CAF_TEST(a refused request leaves its keep alive connection in step) {
  keyed_node n{key1 + "\n"};
  CAF_REQUIRE(n.node->wait_ready());
  // Raw HTTP/1.1 on one connection: a refused POST with a body, then an
  // allowed GET. The second answer must be the GET's, not the first body
  // read as a request.
  auto body = completion;
  auto answers = one_connection(
    n.node->http_port(),
    {"POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
     "Content-Type: application/json\r\nContent-Length: "
       + std::to_string(body.size()) + "\r\n\r\n" + body,
     "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key1
       + "\r\n\r\n"});
  CAF_REQUIRE_EQUAL(answers.size(), 2u);
  CAF_CHECK_EQUAL(answers[0].substr(0, 12), "HTTP/1.1 401");
  CAF_CHECK_NOT_EQUAL(answers[0].find("\r\nWWW-Authenticate: Bearer\r\n"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(answers[0].find("\"code\":\"invalid_api_key\""),
                      std::string::npos);
  CAF_CHECK_EQUAL(answers[1].substr(0, 12), "HTTP/1.1 200");
  CAF_CHECK_NOT_EQUAL(answers[1].find("tiny-mixtral-text-a"),
                      std::string::npos);
}

CAF_TEST(keys are read again when the file changes) {
  keyed_node n{key1 + "\n"};
  CAF_REQUIRE(n.node->wait_ready());
  auto models = [&](const std::string& key) {
    return curl("GET", n.url("/v1/models"), {}, bearer(key)).status;
  };
  CAF_CHECK_EQUAL(models(key1), 200);
  CAF_CHECK_EQUAL(models(key2), 401);
  // The file is checked on requests, at most once a second.
  auto until = [&](auto done) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (!done() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds{200});
    return done();
  };
  replace_file(n.keys_file, key2 + "\n");
  CAF_CHECK(until([&] { return models(key2) == 200; }));
  CAF_CHECK_EQUAL(models(key1), 401);
  // A change that does not parse keeps the keys in use and says why.
  replace_file(n.keys_file, "too-short\n");
  auto complaint = n.keys_file + ":1: a key has 9";
  CAF_CHECK(until([&] {
    models(key2);
    n.node->process().read_log(std::chrono::milliseconds{10});
    return n.node->process().log().find(complaint) != std::string::npos;
  }));
  CAF_CHECK_EQUAL(models(key2), 200);
  CAF_CHECK_EQUAL(n.node->process().log().find("too-short"), std::string::npos);
}

CAF_TEST(public paths can be protected too) {
  keyed_node n{key1 + "\n", "public_paths = [\"/metrics\"]\n"};
  CAF_REQUIRE(n.node->wait_ready());
  check_unauthorized(curl("GET", n.url("/health")), "API key");
  CAF_CHECK_EQUAL(curl("GET", n.url("/health"), {}, bearer(key1)).status, 200);
  CAF_CHECK_EQUAL(curl("GET", n.url("/metrics")).status, 200);
}

CAF_TEST(a bad key file stops the node at start) {
  keyed_node n{key1 + "\nnot a key\n"};
  CAF_CHECK_EQUAL(n.node->process().wait_exit(std::chrono::seconds{60}), 2);
  auto log = n.node->process().log();
  CAF_CHECK_NOT_EQUAL(log.find("[http] api_keys_file: " + n.keys_file
                               + ":2: a key has 9 characters"),
                      std::string::npos);
  CAF_CHECK_EQUAL(log.find(key1), std::string::npos);
}
