#define CAF_SUITE http.api

// The HTTP API of real nodes, driven by curl: /health, /v1/models,
// /tokenize, /detokenize and /metrics; completions streamed and not; and the
// status and error object of each kind of bad request (400, 404, 405, 413,
// 429, 503), of a model without a tokenizer and of one without a chat
// template.

#include <thread>

#include <nlohmann/json.hpp>

#include "net/tcp_listen.hpp"
#include "tests/http/api_fixture.hpp"
#include "tests/text/text_fixture.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;
using njson = nlohmann::json;

namespace {

/// The body as JSON; fails the test when it is not.
njson json_of(const http_reply& r) {
  auto doc = njson::parse(r.body, nullptr, false);
  if (doc.is_discarded())
    CAF_FAIL("not JSON (status " << r.status << "): " << r.body << r.err);
  return doc;
}

/// Checks that `r` is OpenAI's error object with `status` and `param`.
void check_error(const http_reply& r, int status, const std::string& param,
                 const std::string& code = {}) {
  CAF_CHECK_EQUAL(r.status, status);
  auto doc = json_of(r);
  if (!doc.contains("error"))
    CAF_FAIL("no error object: " << r.body);
  const auto& e = doc["error"];
  CAF_CHECK(e["message"].is_string() && !e["message"].get<std::string>().empty());
  CAF_CHECK(e["type"].is_string());
  if (param.empty())
    CAF_CHECK(e["param"].is_null());
  else
    CAF_CHECK_EQUAL(e["param"], param);
  if (!code.empty())
    CAF_CHECK_EQUAL(e["code"], code);
  CAF_MESSAGE(r.status << ": " << e["message"].get<std::string>());
}

std::string post_json(const njson& body) {
  return body.dump();
}

/// The value of the series `name{...}` whose labels contain every `labels`
/// entry, or -1.
double series_value(const std::string& text, const std::string& name,
                    const std::vector<std::string>& labels) {
  std::istringstream lines{text};
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(name + "{", 0) != 0)
      continue;
    bool all = true;
    for (const auto& l : labels)
      all = all && line.find(l) != std::string::npos;
    if (all)
      return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return -1;
}

} // namespace

CAF_TEST(a text model serves health models tokenize detokenize and metrics) {
  api_node node;
  CAF_REQUIRE(node.wait_ready());
  auto url = node.base_url();
  auto health = curl("GET", url + "/health");
  CAF_CHECK_EQUAL(health.status, 200);
  auto health_doc = json_of(health);
  CAF_CHECK_EQUAL(health_doc["status"], "ok");
  auto models = json_of(curl("GET", url + "/v1/models"));
  CAF_CHECK_EQUAL(models["object"], "list");
  CAF_REQUIRE_EQUAL(models["data"].size(), 1u);
  CAF_CHECK_EQUAL(models["data"][0]["id"], "tiny-mixtral-text-a");
  CAF_CHECK_EQUAL(models["data"][0]["max_model_len"], 1024);
  CAF_CHECK_EQUAL(curl("GET", url + "/v1/models/tiny-mixtral-text-a").status,
                  200);
  check_error(curl("GET", url + "/v1/models/gpt-4"), 404, "model",
              "model_not_found");
  const auto& c = load_text_reference().cases[0];
  auto tok = curl("POST", url + "/tokenize",
                  post_json({{"prompt", c.prompt}, {"add_special_tokens", true}}));
  CAF_REQUIRE_EQUAL(tok.status, 200);
  auto tokens = json_of(tok);
  CAF_CHECK_EQUAL(tokens["tokens"].get<std::vector<int32_t>>(), c.input_ids);
  CAF_CHECK_EQUAL(tokens["count"], c.input_ids.size());
  CAF_CHECK_EQUAL(tokens["max_model_len"], 1024);
  auto bare = json_of(curl("POST", url + "/tokenize",
                           post_json({{"prompt", c.prompt},
                                      {"add_special_tokens", false}})));
  CAF_CHECK_EQUAL(bare["count"], c.input_ids.size() - 1);
  auto detok = curl("POST", url + "/detokenize",
                    post_json({{"tokens", c.greedy_new_tokens}}));
  CAF_REQUIRE_EQUAL(detok.status, 200);
  auto detok_doc = json_of(detok);
  CAF_CHECK_EQUAL(detok_doc["prompt"], c.greedy_text);
  check_error(curl("POST", url + "/tokenize", "{}"), 400, "prompt");
  check_error(curl("POST", url + "/detokenize",
                   post_json({{"tokens", {1, 99999}}})),
              400, "tokens");
  check_error(curl("POST", url + "/tokenize", "{\"prompt\": "), 400, "");
  check_error(curl("GET", url + "/nope"), 404, "", "not_found");
  check_error(curl("GET", url + "/v1/completions"), 405, "",
              "method_not_allowed");
  auto metrics = curl("GET", url + "/metrics");
  CAF_REQUIRE_EQUAL(metrics.status, 200);
  CAF_CHECK_EQUAL(series_value(metrics.body, "voltinfer_http_requests_total",
                               {"endpoint=\"/health\"", "status=\"200\""}),
                  1.0);
  CAF_CHECK_EQUAL(series_value(metrics.body, "voltinfer_http_requests_total",
                               {"endpoint=\"other\"", "status=\"404\""}),
                  1.0);
  auto check = run_process(
    {"/bin/sh", "-c",
     std::string{VOLT_PROMTOOL} + " check metrics <<'EOF'\n" + metrics.body
       + "EOF\n"});
  CAF_CHECK_EQUAL(check.exit_code, 0);
  if (check.exit_code != 0)
    CAF_MESSAGE("promtool: " << check.out << check.err);
}

CAF_TEST(completions answer whole and streamed with the reference text) {
  api_node node;
  CAF_REQUIRE(node.wait_ready());
  auto url = node.base_url() + "/v1/completions";
  const auto& c = load_text_reference().cases[1];
  njson req{{"model", "tiny-mixtral-text-a"},
           {"prompt", c.prompt},
           {"max_tokens", c.greedy_new_tokens.size()},
           {"temperature", 0}};
  auto whole = curl("POST", url, req.dump());
  CAF_REQUIRE_EQUAL(whole.status, 200);
  auto doc = json_of(whole);
  auto text = doc["choices"][0]["text"].get<std::string>();
  CAF_CHECK(text == c.greedy_text || text == " " + c.greedy_text);
  CAF_CHECK_EQUAL(doc["choices"][0]["finish_reason"], "length");
  CAF_CHECK_EQUAL(doc["usage"]["prompt_tokens"], c.input_ids.size());
  CAF_CHECK_EQUAL(doc["usage"]["completion_tokens"],
                  c.greedy_new_tokens.size());
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto stream = curl("POST", url, req.dump(), {"-N"});
  CAF_REQUIRE_EQUAL(stream.status, 200);
  std::string joined;
  std::istringstream events{stream.body};
  size_t chunks = 0;
  njson last;
  bool done = false;
  for (std::string line; std::getline(events, line);) {
    if (line.empty())
      continue;
    CAF_REQUIRE(line.rfind("data: ", 0) == 0);
    if (line == "data: [DONE]") {
      done = true;
      continue;
    }
    CAF_CHECK(!done);
    last = njson::parse(line.substr(6));
    if (!last["choices"].empty()) {
      joined += last["choices"][0]["text"].get<std::string>();
      ++chunks;
    }
  }
  CAF_CHECK(done);
  CAF_CHECK_EQUAL(joined, text);
  CAF_CHECK_GREATER(chunks, 1u);
  CAF_CHECK_EQUAL(last["usage"]["completion_tokens"],
                  c.greedy_new_tokens.size());
  CAF_CHECK(stream.body.size() > 14
            && stream.body.compare(stream.body.size() - 14, 14,
                                   "data: [DONE]\n\n")
                 == 0);
}

CAF_TEST(bad requests get their status and error object) {
  api_node node{"max_body_mib = 1\n"};
  CAF_REQUIRE(node.wait_ready());
  auto url = node.base_url() + "/v1/completions";
  check_error(curl("POST", url, post_json({{"prompt", "x"}, {"temperature", 5}})),
              400, "temperature");
  check_error(curl("POST", url, post_json({{"prompt", "x"}, {"max_token", 5}})),
              400, "max_token");
  check_error(curl("POST", url, post_json({{"model", "gpt-4"}, {"prompt", "x"}})),
              404, "model", "model_not_found");
  check_error(curl("POST", url, post_json({{"prompt", {5000}}})), 400,
              "prompt");
  std::vector<int32_t> long_prompt(1100, 7);
  check_error(curl("POST", url, post_json({{"prompt", long_prompt}})), 413,
              "prompt", "context_length_exceeded");
  auto big = node.dir().file("big.json");
  write_text(big, "{\"prompt\": \"" + std::string(size_t{2} << 20, 'a')
                    + "\"}");
  check_error(curl("POST", url, {},
                   {"-H", "Content-Type: application/json", "--data-binary",
                    "@" + big}),
              413, "");
  // Nested deeper than 256 levels: refused before anything prints the value
  // (quoting it in an error recursed once per level, and a body like this
  // one overflowed the stack of the thread serving it).
  write_text(big, "{\"prompt\": " + std::string(400000, '[')
                    + std::string(400000, ']') + "}");
  check_error(curl("POST", url, {},
                   {"-H", "Content-Type: application/json", "--data-binary",
                    "@" + big}),
              400, "");
  // The chat endpoint is off without a chat template; the message says how
  // to turn it on, and the node said so at start.
  auto chat = curl("POST", node.base_url() + "/v1/chat/completions",
                   post_json({{"messages",
                               {{{"role", "user"}, {"content", "hi"}}}}}));
  check_error(chat, 400, "messages");
  CAF_CHECK_NOT_EQUAL(chat.body.find("[http] chat_template"),
                      std::string::npos);
  CAF_CHECK_NOT_EQUAL(node.process().log().find("chat endpoint is off"),
                      std::string::npos);
  // The node still serves.
  CAF_CHECK_EQUAL(curl("POST", url, post_json({{"prompt", "x"}})).status, 200);
}

CAF_TEST(a full queue answers 429) {
  api_node node{"[engine]\nmax_queue = 1\nmax_batch = 1\n"};
  CAF_REQUIRE(node.wait_ready());
  auto url = node.base_url() + "/v1/completions";
  auto body = post_json({{"prompt", "def f(x):"},
                         {"max_tokens", 200},
                         {"ignore_eos", true}});
  std::vector<http_reply> replies(6);
  std::vector<std::thread> clients;
  for (auto& r : replies)
    clients.emplace_back([&r, &url, &body] { r = curl("POST", url, body); });
  for (auto& t : clients)
    t.join();
  size_t ok = 0, refused = 0;
  for (const auto& r : replies) {
    if (r.status == 200)
      ++ok;
    else if (r.status == 429) {
      ++refused;
      check_error(r, 429, "", "queue_full");
    } else {
      CAF_MESSAGE("unexpected reply " << r.status << ": " << r.body << r.err);
    }
  }
  CAF_CHECK_GREATER_OR_EQUAL(ok, 1u);
  CAF_CHECK_GREATER_OR_EQUAL(refused, 1u);
  CAF_CHECK_EQUAL(ok + refused, replies.size());
}

CAF_TEST(a router without its workers is not ready) {
  api_node node{"[router]\nworkers = [\"127.0.0.1:"
                  + std::to_string(free_port()) + "\"]\n",
                text_model(), "router"};
  CAF_REQUIRE(node.wait_api());
  check_error(curl("GET", node.base_url() + "/health"), 503, "", "not_ready");
  check_error(curl("POST", node.base_url() + "/v1/completions",
                   post_json({{"prompt", "x"}})),
              503, "", "not_ready");
  // Tokenising needs no engine.
  CAF_CHECK_EQUAL(curl("POST", node.base_url() + "/tokenize",
                       post_json({{"prompt", "x"}}))
                    .status,
                  200);
}

CAF_TEST(a router serves completions once its worker hosts every expert) {
  temp_dir dir;
  auto wport = free_port();
  node_process worker{write_node_toml(
    dir, {"w", "worker", wport, 0, "[worker]\nexperts = [0, 1, 2, 3, 4, 5, 6, 7]\n",
          text_model()})};
  api_node router{"[router]\nworkers = [\"127.0.0.1:" + std::to_string(wport)
                    + "\"]\n",
                  text_model(), "router"};
  CAF_REQUIRE(worker.wait_ready());
  CAF_REQUIRE(router.wait_ready());
  CAF_CHECK_EQUAL(curl("GET", router.base_url() + "/health").status, 200);
  const auto& c = load_text_reference().cases[2];
  auto r = curl("POST", router.base_url() + "/v1/completions",
                post_json({{"prompt", c.prompt},
                           {"max_tokens", c.greedy_new_tokens.size()},
                           {"temperature", 0}}));
  CAF_REQUIRE_EQUAL(r.status, 200);
  auto doc = json_of(r);
  auto text = doc["choices"][0]["text"].get<std::string>();
  CAF_CHECK(text == c.greedy_text || text == " " + c.greedy_text);
}

CAF_TEST(a model without a tokenizer serves token ids only) {
  api_node node{{}, tiny_mixtral_dir()};
  CAF_REQUIRE(node.wait_ready());
  auto url = node.base_url();
  auto r = curl("POST", url + "/v1/completions",
                post_json({{"prompt", {1, 2, 3}},
                           {"max_tokens", 5},
                           {"temperature", 0},
                           {"ignore_eos", true}}));
  CAF_REQUIRE_EQUAL(r.status, 200);
  auto doc = json_of(r);
  CAF_CHECK_EQUAL(doc["choices"][0]["text"], "");
  CAF_CHECK_EQUAL(doc["choices"][0]["token_ids"].size(), 5u);
  auto text = curl("POST", url + "/v1/completions",
                   post_json({{"prompt", "hello"}}));
  check_error(text, 400, "prompt");
  CAF_CHECK_NOT_EQUAL(text.body.find("no tokenizer.model"), std::string::npos);
  check_error(curl("POST", url + "/tokenize", post_json({{"prompt", "x"}})),
              400, "prompt");
  check_error(curl("POST", url + "/v1/chat/completions",
                   post_json({{"messages",
                               {{{"role", "user"}, {"content", "hi"}}}}})),
              400, "messages");
  check_error(curl("POST", url + "/v1/completions",
                   post_json({{"prompt", {1}}, {"stop", "x"}})),
              400, "stop");
}

CAF_TEST(bad http keys stop the node with a line naming the key) {
  temp_dir dir;
  auto port = free_port();
  auto run = [&](const std::string& id, const std::string& http) {
    auto file = write_node_toml(dir, {id, "standalone", port, 0, http,
                                      text_model()});
    return run_process({volt_node_binary(), "--config", file});
  };
  auto clash = run("clash", "[http]\nport = " + std::to_string(port) + "\n");
  CAF_CHECK_EQUAL(clash.exit_code, 2);
  CAF_CHECK_NOT_EQUAL(clash.err.find("[http] port: " + std::to_string(port)
                                     + " is also [network] port"),
                      std::string::npos);
  auto format = run("format", "[http]\nchat_template = \"llama\"\n");
  CAF_CHECK_EQUAL(format.exit_code, 2);
  CAF_CHECK_NOT_EQUAL(format.err.find("[http] chat_template: expected"),
                      std::string::npos);
  // A port another process holds.
  auto busy = free_port();
  while (busy == port)
    busy = free_port();
  auto held = listen_tcp("127.0.0.1", busy);
  CAF_REQUIRE(held);
  auto in_use = run("busy", "[http]\nport = " + std::to_string(busy) + "\n");
  close(held->fd);
  CAF_CHECK_EQUAL(in_use.exit_code, 2);
  CAF_CHECK_NOT_EQUAL(in_use.err.find("[http] port: cannot listen on"),
                      std::string::npos);
}

namespace {

/// Starts a long completion whose client leaves after 300 ms; checks that the
/// engine cancels it and is free for the next request.
void check_client_leaves(bool stream) {
  api_node node;
  CAF_REQUIRE(node.wait_ready());
  auto url = node.base_url() + "/v1/completions";
  // Far more tokens than 300 ms make, even on a fast idle machine (one
  // sequence of the tiny model's 1000 did once finish inside 300 ms):
  // sixteen sequences of 1000, so the client leaves mid-generation.
  njson req{{"prompt", "def f(x):"},
           {"max_tokens", 1000},
           {"n", 16},
           {"temperature", 0},
           {"ignore_eos", true},
           {"stream", stream}};
  auto gone = curl("POST", url, req.dump(), {"-N", "--max-time", "0.3"});
  if (gone.err.find("timed out") == std::string::npos)
    CAF_MESSAGE("the client did not time out: " << gone.status << " "
                                                << gone.body.substr(0, 300)
                                                << gone.err);
  CAF_CHECK_NOT_EQUAL(gone.err.find("timed out"), std::string::npos);
  CAF_CHECK(node.process().wait_log("cancelled (cancelled)",
                                    std::chrono::seconds{10}));
  // The engine is free again: a short request answers at once.
  auto start = std::chrono::steady_clock::now();
  CAF_CHECK_EQUAL(
    curl("POST", url, post_json({{"prompt", "x"}, {"max_tokens", 4}})).status,
    200);
  CAF_CHECK_LESS(std::chrono::steady_clock::now() - start,
                 std::chrono::seconds{2});
}

} // namespace

CAF_TEST(a client that leaves a whole completion cancels it) {
  check_client_leaves(false);
}

CAF_TEST(a client that leaves a stream cancels it) {
  check_client_leaves(true);
}
