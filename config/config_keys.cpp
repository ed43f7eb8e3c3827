// THE table of configuration keys. Adding a key: add the field (with its
// default) to its section struct in node_config.hpp, add one entry below, and
// paste the regenerated reference into docs/CONFIGURATION.md (the config.docs
// test writes it out when they differ). The TOML reader, the
// VOLT_<SECTION>_<KEY> overrides and the docs all follow from the entry.

#include "config/config_keys.hpp"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <limits>
#include <set>

#include "config/cluster_secret.hpp"
#include "config/endpoint.hpp"
#include "config/key_access.hpp"
#include "text/chat_template.hpp"

namespace volt {

namespace {

// -- checks beyond type and range
// -----------------------------------------------------------

std::string check_node_id(const std::string& id) {
  auto ok = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_'
           || c == '-';
  });
  if (ok)
    return {};
  return "expected a non-empty id of letters, digits, '.', '_' or '-', got "
         + quote(id);
}

std::string check_host(const std::string& host) {
  // Same rules as the host part of "host:port", so a router can always reach
  // what we advertise.
  auto bracketed = !host.empty() && host.front() == '[';
  if (!bracketed
      && (parse_endpoint(host + ":1") || parse_endpoint("[" + host + "]:1")))
    return {};
  return "expected a host name or IP address, got " + quote(host);
}

std::string check_experts(const std::vector<uint32_t>& ids) {
  std::set<uint32_t> seen;
  for (auto id : ids)
    if (!seen.insert(id).second)
      return "expert " + std::to_string(id) + " is listed twice";
  return {};
}

std::string check_device(const std::string& device) {
  if (parse_device(device))
    return {};
  return "expected \"cpu\" or \"cuda:N\" with N a non-negative integer, got "
         + quote(device);
}

std::string check_quantization(const std::string& q) {
  if (q == "none" || q == "int8")
    return {};
  return "expected \"none\" or \"int8\", got " + quote(q);
}

std::string check_activations(const std::string& a) {
  if (a == "bf16" || a == "float32")
    return {};
  return "expected \"bf16\" or \"float32\", got " + quote(a);
}

/// Checks a list of "host:port" nodes; `noun` names one in messages.
std::string check_nodes(const std::vector<std::string>& nodes,
                        const std::string& noun) {
  std::set<std::string> seen;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!parse_endpoint(nodes[i]))
      return "element " + std::to_string(i)
             + ": expected \"host:port\" with port in [1, 65535], got "
             + quote(nodes[i]);
    if (!seen.insert(nodes[i]).second)
      return noun + " " + quote(nodes[i]) + " is listed twice";
  }
  return {};
}

std::string check_workers(const std::vector<std::string>& workers) {
  return check_nodes(workers, "worker");
}

std::string check_spare_nodes(const std::vector<std::string>& nodes) {
  return check_nodes(nodes, "node");
}

std::string check_webhook_url(const std::string& url) {
  if (url.empty() || parse_http_url(url))
    return {};
  return "expected \"\" (no webhook) or \"http[s]://host[:port][/path]\" "
         "without credentials or fragment, got "
         + quote(url);
}

std::string check_placement(const std::vector<placement_entry>& entries) {
  std::set<std::string> nodes;
  for (size_t i = 0; i < entries.size(); ++i) {
    auto where = "element " + std::to_string(i) + ": ";
    if (!parse_endpoint(entries[i].node))
      return where
             + "node: expected \"host:port\" with port in [1, 65535], "
               "got "
             + quote(entries[i].node);
    if (!nodes.insert(entries[i].node).second)
      return where + "node " + quote(entries[i].node) + " is listed twice";
    if (entries[i].experts.empty())
      return where + "experts: empty (list the experts to spawn there)";
    if (auto problem = check_experts(entries[i].experts); !problem.empty())
      return where + "experts: " + problem;
  }
  return {};
}

std::string check_redis_url(const std::string& url) {
  if (parse_redis_url(url))
    return {};
  return "expected \"redis://[[user]:password@]host[:port][/db]\" (port "
         "6379 and database 0 when left out), got "
         + quote(redact_redis_url(url));
}

std::string check_chat_template(const std::string& name) {
  if (name.empty() || parse_chat_format(name))
    return {};
  return "expected \"\" (recognise the checkpoint's template), \"mistral\" "
         "or \"chatml\", got "
         + quote(name);
}

std::string check_model_name(const std::string& name) {
  // The name travels in JSON and URLs (/v1/models/NAME): keep it printable.
  auto ok = std::all_of(name.begin(), name.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '"' && c != '\\';
  });
  if (ok)
    return {};
  return "expected printable ASCII without spaces, quotes or backslashes, got "
         + quote(name);
}

std::string check_public_paths(const std::vector<std::string>& paths) {
  std::set<std::string> seen;
  for (size_t i = 0; i < paths.size(); ++i) {
    if (paths[i] != "/health" && paths[i] != "/metrics")
      return "element " + std::to_string(i)
             + ": expected \"/health\" or \"/metrics\", got "
             + quote(paths[i]);
    if (!seen.insert(paths[i]).second)
      return quote(paths[i]) + " is listed twice";
  }
  return {};
}

constexpr int64_t max_port = 65535;
constexpr int64_t max_expert_id = std::numeric_limits<uint32_t>::max();

} // namespace

const std::vector<config_section>& config_sections() {
  static const std::vector<config_section> sections = {
    {"node", "Who this process is."},
    {"network", "Where this node listens for other nodes."},
    {"model", "The checkpoint every role loads."},
    {"worker", "What a worker hosts and where it runs them."},
    {"router", "Which workers a router uses: connected to (static discovery) "
               "or spawned on (placement)."},
    {"discovery",
     "How a router finds workers: a fixed list or a Redis registry."},
    {"metrics", "The Prometheus endpoint."},
    {"kv_cache", "The KV page pool of a node that runs attention (standalone "
                 "or router)."},
    {"engine", "Continuous batching: the request queue, the batch and chunked "
               "prefill."},
    {"http", "The OpenAI-compatible HTTP API of a standalone or router node "
             "(/v1/completions, /v1/chat/completions, /v1/models, /health, "
             "/tokenize, /detokenize, /metrics)."},
    {"security",
     "Trust between nodes and clients. Node links (router, workers, clients "
     "on [network] port) use mutual TLS through CAF's OpenSSL module, or "
     "plaintext only with insecure = true; Redis records are signed with a "
     "shared secret (docs/OPERATIONS.md, *Security*)."},
    {"prefetch",
     "The expert prefetch predictor of a standalone or router node: it "
     "learns the routing online and names, per layer, the experts worth "
     "staging on the device before the layer needs them; it scores itself "
     "against the router's choices (voltinfer_prefetch_* in /metrics). With "
     "experts on the CPU it predicts and scores without staging anything."},
    {"autoscaler",
     "Adds capacity when a router or standalone node stays overloaded (a "
     "webhook event, replicas of the hottest experts on spare nodes) and "
     "gives it back when load stays low."},
  };
  return sections;
}

const std::vector<config_key>& config_keys() {
  static const std::vector<config_key> keys = {
    // -- [node]
    // ------------------------------------------------------------------------------
    {"node", "id",
     field<&node_config::node, &node_section::id, check_node_id>(),
     "Name of this node in logs, metrics labels and Redis keys: letters, "
     "digits, '.', '_' "
     "or '-'."},
    {"node", "role", field<&node_config::node, &node_section::role>(),
     "What this process runs: \"standalone\" (every actor in one process), "
     "\"router\" "
     "(engine, gating and dispatch; experts on workers) or \"worker\" (hosts "
     "experts for a "
     "router)."},
    // -- [network]
    // ---------------------------------------------------------------------------
    {"network", "host",
     field<&node_config::network, &network_section::host, check_host>(),
     "Address this node binds and advertises to other nodes."},
    {"network", "port", field<&node_config::network, &network_section::port>(),
     "TCP port this node listens on for other nodes.", 1, max_port},
    {"network", "peer_timeout_ms",
     field<&node_config::network, &network_section::peer_timeout_ms>(),
     "A peer that sends nothing, not even a heartbeat, for this many "
     "milliseconds is taken as dead (a frozen process is noticed this fast); "
     "heartbeats go out every quarter of it.",
     100, 600000},
    {"network", "busy_poll_us",
     field<&node_config::network, &network_section::busy_poll_us>(),
     "After relaying bytes, the guard in front of this node's port keeps "
     "polling its connections for this many microseconds before it sleeps: "
     "an answer or request that follows within that time skips a thread "
     "wake-up (tens of microseconds where idle cores halt, as on many VMs), "
     "at the cost of a busy core while traffic flows. 0: off.",
     0, 1000000},
    // -- [model]
    // -----------------------------------------------------------------------------
    {"model", "path", field<&node_config::model, &model_section::path>(),
     "Folder with config.json and *.safetensors (Hugging Face Mixtral layout). "
     "Required for "
     "every role. A relative path is relative to the current working "
     "directory, not to the "
     "config file."},
    {"model", "quantization",
     field<&node_config::model, &model_section::quantization,
           check_quantization>(),
     "How expert weights are stored on a CUDA device: \"none\" (bf16) or "
     "\"int8\" (weight-only, per-output-channel symmetric int8 with fp32 "
     "scales, quantised at load time: half the memory of bf16)."},
    {"model", "device",
     field<&node_config::model, &model_section::device, check_device>(),
     "Where a standalone or router node runs each step of the model: \"cpu\" "
     "(float32, the reference) or \"cuda:N\" (the whole step on CUDA device "
     "N in bf16: embedding, attention over a KV cache in device memory, "
     "routing, a standalone node's experts, the LM head and greedy "
     "sampling). Workers place their experts with [worker] device."},
    {"model", "activations",
     field<&node_config::model, &model_section::activations,
           check_activations>(),
     "How a CUDA executor ([model] device = \"cuda:N\") carries activations "
     "into its products: \"bf16\" (each product's input rounded to bf16, "
     "the fast default) or \"float32\" (each carried as two bf16, about 16 "
     "significant bits, and every product run over both: logits within "
     "about 2e-3 of the float32 CPU executor where bf16 drifts to a few "
     "percent on a deep model; steps slower, the KV cache twice the memory). "
     "The weights stay bf16 (or int8). \"float32\" needs a standalone node "
     "without an expert cache. The CPU executor is float32 either way."},
    // -- [worker]
    // ----------------------------------------------------------------------------
    {"worker", "experts",
     field<&node_config::worker, &worker_section::experts, check_experts>(),
     "Global ids of the experts this worker hosts, no duplicates, each below "
     "the model's num_local_experts. Empty: the worker hosts only the experts "
     "routers spawn on it ([router] placement).",
     0, max_expert_id},
    {"worker", "device",
     field<&node_config::worker, &worker_section::device, check_device>(),
     "Where this worker's experts run: \"cpu\" or \"cuda:N\" (N: CUDA device "
     "index)."},
    {"worker", "gpu_expert_slots",
     field<&node_config::worker, &worker_section::gpu_expert_slots>(),
     "Experts (of all layers together) a node computing experts on a GPU (a "
     "worker with device = \"cuda:N\", or a standalone node) keeps on the "
     "device at once; the others wait in pinned host memory and are copied "
     "in as steps need them, those the prefetch predictor expects first (a "
     "worker gets the router's predictions with its rows). At least one "
     "layer's experts (a standalone node's num_local_experts, a worker's "
     "hosted experts of one layer); 0, or as many as the node hosts: every "
     "expert resident. For a GPU smaller than the model's experts.",
     0, 1 << 20},
    {"worker", "expert_misses",
     field<&node_config::worker, &worker_section::expert_misses>(),
     "Where an expert the GPU expert cache ([worker] gpu_expert_slots) does "
     "not hold runs. \"auto\": the node times, at start, one bf16 expert "
     "computed on the host CPU (one row) against its copy, and each layer "
     "sends its misses where it waits least: a miss less likely to be needed "
     "again than the expert it would evict runs on the host and leaves the "
     "slots alone, and of those worth keeping the layer waits for as many "
     "copies as keep its wait shortest while the host computes the rest, "
     "their copies going on in the background. \"host\": every miss runs on "
     "the host (those worth keeping copied in the background). \"load\": "
     "every miss is copied and waited for. int8 experts always load."},
    // -- [router]
    // ----------------------------------------------------------------------------
    {"router", "workers",
     field<&node_config::router, &router_section::workers, check_workers>(),
     "Workers to connect to, each \"host:port\" (IPv6 as \"[::1]:7001\"). A "
     "router in static "
     "discovery mode needs at least one."},
    {"router", "placement",
     field<&node_config::router, &router_section::placement, check_placement>(),
     "Expert actors the router spawns on worker nodes, as [{node = "
     "\"host:port\", experts = [..]}, ...]; each node loads them from its own "
     "[model] path. Environment form: \"host:port=0,1;host:port=2,3\".",
     0, max_expert_id},
    {"router", "ready_timeout_ms",
     field<&node_config::router, &router_section::ready_timeout_ms>(),
     "How long a request waits for every expert to have a live host before it "
     "fails with an error naming the missing experts, in milliseconds.",
     0, 3600000},
    {"router", "on_missing_expert",
     field<&node_config::router, &router_section::on_missing_expert>(),
     "What a request does when an expert its tokens are routed to has no live "
     "host (every host dead or unreachable, no replica left): \"fail\" (it "
     "fails with an error naming the experts) or \"renormalize\" (each such "
     "token keeps its other chosen experts, their weights renormalised to sum "
     "to 1, or takes the best available experts when all of its are missing; "
     "the answer carries \"degraded\" and voltinfer_degraded_tokens_total "
     "counts the tokens). Full routing resumes by itself when a host returns."},
    // -- [discovery]
    // -------------------------------------------------------------------------
    {"discovery", "mode",
     field<&node_config::discovery, &discovery_section::mode>(),
     "How a router finds its workers: \"static\" (the [router] workers list) "
     "or \"redis\" "
     "(workers register in Redis)."},
    {"discovery", "redis_url",
     field<&node_config::discovery, &discovery_section::redis_url,
           check_redis_url>(),
     "Redis server used when mode is \"redis\", as "
     "redis://[[user]:password@]host[:port][/db]: port 6379 and database 0 "
     "when left out; with a password the nodes send AUTH, with a database "
     "SELECT (credentials may be percent-encoded)."},
    {"discovery", "heartbeat_ms",
     field<&node_config::discovery, &discovery_section::heartbeat_ms>(),
     "How often a worker refreshes its Redis registration, in milliseconds.",
     10, 600000},
    {"discovery", "ttl_ms",
     field<&node_config::discovery, &discovery_section::ttl_ms>(),
     "Lifetime of a worker's Redis registration without a refresh, in "
     "milliseconds; must exceed heartbeat_ms.",
     20, 3600000},
    {"discovery", "poll_ms",
     field<&node_config::discovery, &discovery_section::poll_ms>(),
     "How often a router reads the set of registered workers from Redis, in "
     "milliseconds.",
     10, 600000},
    // -- [metrics]
    // ---------------------------------------------------------------------------
    {"metrics", "port", field<&node_config::metrics, &metrics_section::port>(),
     "TCP port of the Prometheus /metrics endpoint; 0 disables it.", 0,
     max_port},
    // -- [kv_cache]
    // --------------------------------------------------------------------------
    {"kv_cache", "page_size",
     field<&node_config::kv_cache, &kv_cache_section::page_size>(),
     "Tokens per KV page: the unit of allocation, sharing and prefix reuse "
     "(only full pages are reused).",
     1, 4096},
    {"kv_cache", "num_pages",
     field<&node_config::kv_cache, &kv_cache_section::num_pages>(),
     "Pages in the KV pool; wins over memory_mib when both are set. 0 derives "
     "the count from memory_mib.",
     0, 16777216},
    {"kv_cache", "memory_mib",
     field<&node_config::kv_cache, &kv_cache_section::memory_mib>(),
     "K/V memory budget in MiB for all layers, used when num_pages is 0. With "
     "both 0 the pool holds one sequence of the model's full context "
     "(max_position_embeddings tokens).",
     0, 16777216},
    {"kv_cache", "gpu_memory_percent",
     field<&node_config::kv_cache, &kv_cache_section::gpu_memory_percent>(),
     "With [model] device on a GPU and num_pages and memory_mib both 0: the "
     "pool takes this percent of the device memory left once the weights and "
     "the step's buffers are allocated (the log says how many tokens fit).",
     1, 99},
    // -- [engine]
    // ----------------------------------------------------------------------------
    {"engine", "max_queue",
     field<&node_config::engine, &engine_section::max_queue>(),
     "Requests that may wait for a batch slot; a request beyond it is refused "
     "with an error (and counted), never dropped silently.",
     1, 1048576},
    {"engine", "max_batch",
     field<&node_config::engine, &engine_section::max_batch>(),
     "Sequences decoded together in one step.", 1, 4096},
    {"engine", "prefill_chunk",
     field<&node_config::engine, &engine_section::prefill_chunk>(),
     "Prompt tokens prefilled per sequence per step, so that a long prompt "
     "does not stall running decodes.",
     1, 1048576},
    {"engine", "compute_threads",
     field<&node_config::engine, &engine_section::compute_threads>(),
     "Threads that compute a step's attention and logits on the CPU, the "
     "engine's own included; 0 means one per core. Results do not depend on "
     "it.",
     0, 1024},
    {"engine", "rows_per_part",
     field<&node_config::engine, &engine_section::rows_per_part>(),
     "Rows of a step's attention and logits in one thread's part; fewer "
     "split a step over more threads. 0 picks 8 with 8 or more compute "
     "threads, else 32: measured on a 16-core host, 8 made 32 and 64 "
     "concurrent requests 12-25 % faster than 32 and left 1 and 8 requests "
     "as they were (4 made those 20-30 % slower); on 2 vCPUs 16 made 32 "
     "requests 12 % slower. Results do not depend on it.",
     0, 4096},
    // -- [http]
    // ------------------------------------------------------------------------------
    {"http", "port", field<&node_config::http, &http_section::port>(),
     "TCP port of the OpenAI-compatible API of a standalone or router node; 0 "
     "disables it (workers never serve it).",
     0, max_port},
    {"http", "host",
     field<&node_config::http, &http_section::host, check_host>(),
     "Address the API binds; 0.0.0.0 serves every interface (set "
     "api_keys_file then, or put the API behind a proxy that "
     "authenticates)."},
    {"http", "model_name",
     field<&node_config::http, &http_section::model_name, check_model_name>(),
     "The model's id in /v1/models; requests naming another model get 404. "
     "Empty takes the name of the [model] path folder."},
    {"http", "chat_template",
     field<&node_config::http, &http_section::chat_template,
           check_chat_template>(),
     "Prompt format of /v1/chat/completions: \"mistral\" ([INST] ... "
     "[/INST]) or \"chatml\" (<|im_start|>); empty recognises the "
     "checkpoint's chat_template. Without a recognised template the chat "
     "endpoint answers with an error naming this key; completions still "
     "work."},
    {"http", "threads", field<&node_config::http, &http_section::threads>(),
     "Threads serving connections: each open connection, idle keep-alive ones "
     "and slow clients included, holds one, and connections beyond them wait "
     "for a free one.",
     4, 4096},
    {"http", "timeout_s", field<&node_config::http, &http_section::timeout_s>(),
     "Seconds a client may stay silent while its request is read or refuse "
     "to take a response's bytes before the connection is closed; also how "
     "long an idle keep-alive connection stays open.",
     1, 3600},
    {"http", "max_body_mib",
     field<&node_config::http, &http_section::max_body_mib>(),
     "Largest request body in MiB; a larger one gets 413.", 1, 1024},
    {"http", "api_keys_file",
     field<&node_config::http, &http_section::api_keys_file>(),
     "File of API keys, one per line (16 to 256 characters of letters, "
     "digits and -._~+/=; blank lines and lines starting with '#' are "
     "skipped). When set, every request needs `Authorization: Bearer <key>` "
     "with one of them, else 401; the file is read again within a second of "
     "a change. Empty: no authentication."},
    {"http", "public_paths",
     field<&node_config::http, &http_section::public_paths,
           check_public_paths>(),
     "Routes served without a key when api_keys_file is set: \"/health\" "
     "(load balancers) and \"/metrics\" (Prometheus), or fewer; [] "
     "protects them too."},
    // -- [security]
    // -------------------------------------------------------------------
    {"security", "tls_cert",
     field<&node_config::security, &security_section::tls_cert>(),
     "PEM certificate (intermediates may follow it) this node presents on "
     "every node link, as server and as client; it must chain to tls_ca. "
     "Clients (generate --connect, bench) take it from --tls-cert or this "
     "variable. Read once at start; a relative path is relative to the "
     "current working directory."},
    {"security", "tls_key",
     field<&node_config::security, &security_section::tls_key>(),
     "PEM private key of tls_cert, unencrypted (protect it with the file's "
     "permissions)."},
    {"security", "tls_ca",
     field<&node_config::security, &security_section::tls_ca>(),
     "PEM certificate(s) of the CA that peers' certificates must chain to: "
     "a node accepts a link, and a client trusts a node, only with a "
     "certificate this CA signed (scripts/make_certs.sh DIR makes a CA and "
     "certificates)."},
    {"security", "insecure",
     field<&node_config::security, &security_section::insecure>(),
     "Plaintext node links without authentication, for one machine or a "
     "network you trust; logged as a warning at start. A node needs the "
     "three TLS files or this; both together are an error."},
    {"security", "cluster_secret",
     field<&node_config::security, &security_section::cluster_secret,
           check_cluster_secret>(),
     "Shared secret (at least 32 characters) with which workers sign their "
     "Redis records (HMAC-SHA256) and routers check them: a record that is "
     "unsigned, wrongly signed or expired is ignored. Every node of a "
     "cluster needs the same one. Prefer cluster_secret_file: a value here "
     "or in VOLT_SECURITY_CLUSTER_SECRET can be seen in config copies and "
     "process environments. Empty: records are neither signed nor checked."},
    {"security", "cluster_secret_file",
     field<&node_config::security, &security_section::cluster_secret_file>(),
     "File holding the cluster secret (surrounding whitespace, such as a "
     "trailing newline, is removed); readable by the node's user only. Set "
     "this or cluster_secret; both is an error."},
    // -- [prefetch]
    // --------------------------------------------------------------------------
    {"prefetch", "enabled",
     field<&node_config::prefetch, &prefetch_section::enabled>(),
     "Run the predictor. It runs inside each step as plain calls (a decode "
     "row costs it a few microseconds per layer); off, it costs nothing."},
    {"prefetch", "ngram_order",
     field<&node_config::prefetch, &prefetch_section::ngram_order>(),
     "Tokens in the n-gram predictor's longest context, the last known token "
     "included; each context also holds the experts an earlier position "
     "chose at the layer, and shorter ones back it up while it is new.",
     1, 16},
    {"prefetch", "lookahead_tokens",
     field<&node_config::prefetch, &prefetch_section::lookahead_tokens>(),
     "How many tokens ahead the n-gram predictor predicts: 1 predicts a "
     "row's experts from its own token and the previous position's experts; "
     "L predicts them L - 1 steps before the token is known, from the tokens "
     "up to L - 1 positions back and the experts of the position L back (a "
     "cache gets longer to stage, the prediction is worse).",
     1, 64},
    {"prefetch", "max_staged",
     field<&node_config::prefetch, &prefetch_section::max_staged>(),
     "Most experts staged per layer and step, at most the model's experts "
     "per layer; 0 means twice num_experts_per_tok.",
     0, 4096},
    {"prefetch", "min_chance_percent",
     field<&node_config::prefetch, &prefetch_section::min_chance_percent>(),
     "An expert is staged only while the chance that the step uses it, "
     "measured online for its rank in the prediction, is at least this "
     "percent: where the predictor is often wrong it stages fewer (0 always "
     "stages max_staged).",
     0, 100},
    {"prefetch", "stage_experts",
     field<&node_config::prefetch, &prefetch_section::stage_experts>(),
     "With a GPU expert cache ([worker] gpu_expert_slots): copy the experts "
     "the predictor expects into slots before each layer's routing is known, "
     "and evict by its chances; on a router, each worker gets the "
     "predictions for the next layer's experts it hosts with the current "
     "layer's rows (for a worker's cache). Off, the cache loads what a "
     "layer needs on demand and evicts by which experts it has learned "
     "follow which: on the "
     "H100 machine (55 GB/s host to device) that was faster, since a wrong "
     "guess costs the bus as much as a miss (docs/PERFORMANCE.md)."},
    // -- [autoscaler]
    // ------------------------------------------------------------------------
    {"autoscaler", "enabled",
     field<&node_config::autoscaler, &autoscaler_section::enabled>(),
     "Run the autoscaler on a router or standalone node (workers ignore "
     "it)."},
    {"autoscaler", "interval_ms",
     field<&node_config::autoscaler, &autoscaler_section::interval_ms>(),
     "How often the autoscaler samples the engine's queue, latency and "
     "per-expert load, in milliseconds; at most window_ms and "
     "scale_down_window_ms.",
     10, 600000},
    {"autoscaler", "queue_depth_threshold",
     field<&node_config::autoscaler,
           &autoscaler_section::queue_depth_threshold>(),
     "The node is overloaded while more requests than this wait for a batch "
     "slot (queued or preempted).",
     1, 1048576},
    {"autoscaler", "p99_threshold_ms",
     field<&node_config::autoscaler, &autoscaler_section::p99_threshold_ms>(),
     "The node is also overloaded while the 99th percentile of request "
     "latency over window_ms is above this many milliseconds (estimated from "
     "voltinfer_request_latency_seconds as Prometheus' histogram_quantile "
     "does); 0 leaves latency out.",
     0, 3600000},
    {"autoscaler", "window_ms",
     field<&node_config::autoscaler, &autoscaler_section::window_ms>(),
     "How long overload must hold, sample after sample, before a scale_up, in "
     "milliseconds.",
     10, 86400000},
    {"autoscaler", "scale_down_queue_depth",
     field<&node_config::autoscaler,
           &autoscaler_section::scale_down_queue_depth>(),
     "Load is low while at most this many requests wait (and the P99 is "
     "within p99_threshold_ms when that is set); below "
     "queue_depth_threshold.",
     0, 1048576},
    {"autoscaler", "scale_down_window_ms",
     field<&node_config::autoscaler,
           &autoscaler_section::scale_down_window_ms>(),
     "How long low load must hold before a scale_down that retires the "
     "replicas of the latest scale_up, in milliseconds. A scale_down only "
     "follows a scale_up.",
     10, 86400000},
    {"autoscaler", "cooldown_ms",
     field<&node_config::autoscaler, &autoscaler_section::cooldown_ms>(),
     "Time after an action during which no other action is taken, in "
     "milliseconds, so that new capacity can show its effect.",
     0, 86400000},
    {"autoscaler", "hot_experts",
     field<&node_config::autoscaler, &autoscaler_section::hot_experts>(),
     "How many of the experts with the most token rows per second (over "
     "window_ms, summed over layers) a scale_up names and replicates.",
     1, 4096},
    {"autoscaler", "max_replicas_per_expert",
     field<&node_config::autoscaler,
           &autoscaler_section::max_replicas_per_expert>(),
     "Replicas of one expert the autoscaler adds at most, over all spare "
     "nodes.",
     1, 64},
    {"autoscaler", "spare_nodes",
     field<&node_config::autoscaler, &autoscaler_section::spare_nodes,
           check_spare_nodes>(),
     "Bare worker nodes, each \"host:port\", that a router's scale_up "
     "spawns replicas of the hot experts on (remote spawn of volt.expert, "
     "one spare node per scale_up); empty: scale_up only posts the webhook. "
     "A standalone node computes every expert itself and ignores them."},
    {"autoscaler", "spawn_timeout_ms",
     field<&node_config::autoscaler, &autoscaler_section::spawn_timeout_ms>(),
     "Bound on connecting to a spare node, spawning replicas there and "
     "hearing back from them, in milliseconds.",
     100, 600000},
    {"autoscaler", "webhook_url",
     field<&node_config::autoscaler, &autoscaler_section::webhook_url,
           check_webhook_url>(),
     "Every scale_up and scale_down is POSTed here as JSON (action, reason, "
     "queue_depth, p99_seconds, hot_experts, node, time, ...), from a thread "
     "of its own so that serving never waits for it; \"\" posts nothing. "
     "http:// or https://; logs show only its scheme, host and port."},
    {"autoscaler", "webhook_timeout_ms",
     field<&node_config::autoscaler, &autoscaler_section::webhook_timeout_ms>(),
     "Bound on each of connecting, sending and waiting for the answer of one "
     "POST, in milliseconds; an answer other than 2xx also fails it.",
     10, 600000},
    {"autoscaler", "webhook_retries",
     field<&node_config::autoscaler, &autoscaler_section::webhook_retries>(),
     "How often a failed POST of one event is tried again before the event "
     "is dropped (logged, and counted in "
     "voltinfer_autoscaler_webhook_posts_total).",
     0, 100},
    {"autoscaler", "webhook_backoff_ms",
     field<&node_config::autoscaler, &autoscaler_section::webhook_backoff_ms>(),
     "Wait before the first retry of a POST, doubled before each later one, "
     "in milliseconds.",
     0, 600000},
  };
  return keys;
}

const config_key* find_config_key(std::string_view section,
                                  std::string_view name) {
  for (const auto& key : config_keys())
    if (section == key.section && name == key.name)
      return &key;
  return nullptr;
}

std::vector<std::string> config_section_names() {
  std::vector<std::string> result;
  for (const auto& section : config_sections())
    result.emplace_back(section.name);
  return result;
}

std::vector<std::string> config_key_names(std::string_view section) {
  std::vector<std::string> result;
  for (const auto& key : config_keys())
    if (section == key.section)
      result.emplace_back(key.name);
  return result;
}

std::string env_name(const config_key& key) {
  auto result = "VOLT_" + std::string{key.section} + "_" + key.name;
  for (auto& c : result)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return result;
}

} // namespace volt
