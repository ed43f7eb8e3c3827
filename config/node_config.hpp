#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "caf/error.hpp"
#include "caf/expected.hpp"
#include "model/expert_miss_mode.hpp"

// The node configuration: one struct per TOML section. Every key is declared
// once, with its meaning, type, range and environment variable, in the table of
// config/config_keys.cpp; the comments below repeat meaning and default for
// readers of this header only.

namespace volt {

/// What a `volt-node` process runs.
enum class node_role {
  /// Every actor in one process (the embedded default).
  standalone,
  /// Engine, gating and dispatch; experts live on worker nodes.
  router,
  /// Hosts expert actors for a router.
  worker,
};

/// How a router finds its workers.
enum class discovery_mode {
  /// The fixed list in `[router] workers` (TOML string "static").
  static_list,
  /// Workers register in Redis with TTL keys (TOML string "redis").
  redis,
};

/// What a router does with a request whose tokens are routed to an expert
/// that has no live host.
enum class missing_expert_policy {
  /// The request fails with an error naming the experts (TOML "fail").
  fail,
  /// Its tokens go to their other chosen experts, the weights renormalised
  /// over them, and the answer says it is degraded (TOML "renormalize").
  renormalize,
};

/// Returns the TOML spelling of `x`: "standalone", "router" or "worker".
std::string to_string(node_role x);

/// Returns the TOML spelling of `x`: "static" or "redis".
std::string to_string(discovery_mode x);

/// Returns the TOML spelling of `x`: "fail" or "renormalize".
std::string to_string(missing_expert_policy x);

/// Returns the TOML spelling of `x`: "auto", "load" or "host".
std::string to_string(expert_miss_mode x);

/// Section `[node]`: who this process is.
struct node_section {
  /// Name of this node in logs, metrics labels and Redis keys; letters, digits,
  /// '.', '_', '-'. Default: "volt-1".
  std::string id = "volt-1";
  /// What this process runs. Default: standalone.
  node_role role = node_role::standalone;
};

/// Section `[network]`: where this node listens for other nodes.
struct network_section {
  /// Address to bind and to advertise to the router. Default: "127.0.0.1".
  std::string host = "127.0.0.1";
  /// TCP port, 1..65535. Default: 7700.
  uint16_t port = 7700;
  /// A peer that sends nothing (not even a heartbeat) for this long is taken
  /// as dead, in milliseconds; heartbeats go out every quarter of it.
  /// Default: 1000.
  uint32_t peer_timeout_ms = 1000;
  /// After relaying, the port guard polls its sockets this many microseconds
  /// before it sleeps (0: off). Default: 0.
  uint32_t busy_poll_us = 0;
};

/// Section `[model]`: the checkpoint.
struct model_section {
  /// Folder with config.json and *.safetensors; relative paths are relative to
  /// the current working directory. Required for every role. Default: ""
  /// (unset).
  std::string path;
  /// How expert weights are stored on a CUDA device: "none" (bf16) or
  /// "int8" (weight-only, per output channel, fp32 scales; half the bytes).
  /// Default: "none".
  std::string quantization = "none";
  /// Where a standalone or router node runs the model's step: "cpu" (float32,
  /// the reference) or "cuda:N" (bf16 on CUDA device N: attention, routing,
  /// a standalone node's experts, the KV cache and the LM head). Default:
  /// "cpu".
  std::string device = "cpu";
  /// How a CUDA executor carries activations into its products: "bf16"
  /// (rounded once per product) or "float32" (as bf16 pairs, about 16
  /// significant bits: float32-like logits, slower steps, twice the KV
  /// memory; standalone nodes without an expert cache). Default: "bf16".
  std::string activations = "bf16";
};

/// Section `[worker]`: what a worker hosts.
struct worker_section {
  /// Global ids of the experts this worker hosts, no duplicates; a worker needs
  /// at least one. Default: [] (none).
  std::vector<uint32_t> experts;
  /// Where the experts run: "cpu" or "cuda:N". Default: "cpu".
  std::string device = "cpu";
  /// Experts a CUDA executor keeps on its device at once, the rest in
  /// pinned host memory (an expert cache); 0: all. Default: 0.
  uint32_t gpu_expert_slots = 0;
  expert_miss_mode expert_misses = expert_miss_mode::automatic;
};

/// One entry of `[router] placement`: experts the router spawns on a node.
struct placement_entry {
  /// The node, as "host:port" of its [network] endpoint.
  std::string node;
  /// Global expert ids to spawn there (loaded from that node's [model] path).
  std::vector<uint32_t> experts;

  friend bool operator==(const placement_entry& x, const placement_entry& y) {
    return x.node == y.node && x.experts == y.experts;
  }
};

/// Section `[router]`: how a router reaches its workers.
struct router_section {
  /// Workers as "host:port"; a router in static discovery mode needs at least
  /// one. Default: [] (none).
  std::vector<std::string> workers;
  /// Expert actors to spawn on worker nodes (remote spawning), as
  /// [{node = "host:port", experts = [..]}, ...]. Default: [] (none).
  std::vector<placement_entry> placement;
  /// How long a request waits for every expert to have a live host before it
  /// fails naming the missing ones, in milliseconds. Default: 30000.
  uint32_t ready_timeout_ms = 30000;
  /// What a request does when an expert it is routed to has no live host:
  /// fail naming it, or renormalize over the token's other experts (degraded
  /// answers, counted and marked). Default: fail.
  missing_expert_policy on_missing_expert = missing_expert_policy::fail;
};

/// Section `[discovery]`: static list or Redis registry.
struct discovery_section {
  /// How the router finds workers. Default: static_list ("static").
  discovery_mode mode = discovery_mode::static_list;
  /// Redis server for mode "redis", as redis://host[:port]. Default:
  /// "redis://127.0.0.1:6379".
  std::string redis_url = "redis://127.0.0.1:6379";
  /// How often a worker refreshes its Redis key, in milliseconds. Default: 500.
  uint32_t heartbeat_ms = 500;
  /// Lifetime of a worker's Redis key without a refresh, in milliseconds; must
  /// exceed heartbeat_ms. Default: 3000.
  uint32_t ttl_ms = 3000;
  /// How often a router reads the worker set from Redis, in milliseconds.
  /// Default: 250.
  uint32_t poll_ms = 250;
};

/// Section `[metrics]`: the Prometheus endpoint.
struct metrics_section {
  /// TCP port of the /metrics endpoint; 0 disables it. Default: 0.
  uint16_t port = 0;
};

/// Section `[kv_cache]`: the KV page pool of a node that runs attention.
struct kv_cache_section {
  /// Tokens per KV page, 1..4096. Default: 16.
  uint32_t page_size = 16;
  /// Pages in the pool; wins over memory_mib when both are set. 0 derives the
  /// count from memory_mib. Default: 0.
  uint32_t num_pages = 0;
  /// K/V memory budget in MiB (all layers), used when num_pages is 0. 0 with
  /// num_pages 0 gives enough pages for one sequence of the model's full
  /// context (max_position_embeddings); kv_pool_pages() in
  /// model/page_table.hpp applies this rule. Default: 0.
  uint32_t memory_mib = 0;
  /// With [model] device on a GPU and num_pages and memory_mib both 0: the
  /// percent of the device memory left after the weights and the step's
  /// buffers that the pool takes. Default: 90.
  uint32_t gpu_memory_percent = 90;
};

/// Section `[engine]`: continuous batching.
struct engine_section {
  /// Requests waiting for a batch slot; a request beyond it is refused with an
  /// error. Default: 256.
  uint32_t max_queue = 256;
  /// Sequences decoded together per step. Default: 64.
  uint32_t max_batch = 64;
  /// Prompt tokens prefilled per sequence per step, so that long prompts do
  /// not stall running decodes. Default: 512.
  uint32_t prefill_chunk = 512;
  /// Threads that compute a step's attention and logits, the engine's own
  /// included (0: one per core). Default: 0.
  uint32_t compute_threads = 0;
  /// Rows of a step's attention and logits per thread's part (0: 8 with 8 or
  /// more compute threads, else 32). Default: 0.
  uint32_t rows_per_part = 0;
};

/// Section `[http]`: the OpenAI-compatible HTTP API of a standalone or router
/// node.
struct http_section {
  /// TCP port of the API; 0 disables it. Default: 0.
  uint16_t port = 0;
  /// Address the API binds. Default: "127.0.0.1".
  std::string host = "127.0.0.1";
  /// The model's name in /v1/models and the `model` field of requests; ""
  /// takes the checkpoint folder's name. Default: "".
  std::string model_name;
  /// Chat prompt format: "" recognises the checkpoint's chat_template,
  /// "mistral" or "chatml" names one. Default: "".
  std::string chat_template;
  /// Threads serving connections, one per open connection (idle keep-alive
  /// connections included). Default: 64.
  uint32_t threads = 64;
  /// Seconds a connection may stay silent while a request is read or a
  /// response written, and an idle keep-alive connection stays open.
  /// Default: 10.
  uint32_t timeout_s = 10;
  /// Largest request body in MiB. Default: 8.
  uint32_t max_body_mib = 8;
  /// File of API keys, one per line ('#' starts a comment); when set, every
  /// request needs `Authorization: Bearer <key>`. Default: "" (no keys).
  std::string api_keys_file;
  /// Routes served without a key when api_keys_file is set: "/health" and
  /// "/metrics" or fewer. Default: ["/health", "/metrics"].
  std::vector<std::string> public_paths = {"/health", "/metrics"};
};

/// Section `[security]`: trust between the nodes of a cluster.

/// Section `[prefetch]`: the predictor that tells expert caches which
/// experts to stage before a layer needs them.
struct prefetch_section {
  /// Run the predictor on a standalone or router node: it learns the
  /// routing online, stages hints and scores itself (/metrics). Default:
  /// false.
  bool enabled = false;
  /// Tokens in the n-gram's longest context, the last known one included,
  /// 1..16. Default: 3.
  uint32_t ngram_order = 3;
  /// How many tokens ahead the n-gram predicts, 1..64. Default: 1.
  uint32_t lookahead_tokens = 1;
  /// Most experts staged per layer and step, at most the model's experts; 0
  /// means twice num_experts_per_tok. Default: 0.
  uint32_t max_staged = 0;
  /// An expert is staged only while the measured chance that the step uses
  /// it is at least this percent. Default: 10.
  uint32_t min_chance_percent = 10;
  /// With a GPU expert cache: copy the experts the predictor expects ahead
  /// of each layer (else the cache only learns from the routing what to
  /// evict). Default: false.
  bool stage_experts = false;
};

/// Section `[security]`: trust between nodes and clients.
struct security_section {
  // -- mutual TLS on node links (CAF's OpenSSL module) ------------------------
  /// PEM certificate (and chain) this node presents on every node link,
  /// signed by tls_ca. Default: "" (no TLS).
  std::string tls_cert;
  /// PEM private key of tls_cert, unencrypted. Default: "".
  std::string tls_key;
  /// PEM certificate(s) of the CA that every peer's certificate must chain to.
  /// Default: "".
  std::string tls_ca;
  /// Plaintext node links without authentication; a node needs either the
  /// three TLS files or this. Default: false.
  bool insecure = false;
  // -- signed discovery records --------------------------------------------
  /// Secret of at least 32 characters that signs worker records in Redis
  /// (HMAC-SHA256). After loading it also holds what cluster_secret_file
  /// names. Default: "" (records unsigned).
  std::string cluster_secret;
  /// File holding the cluster secret (surrounding whitespace removed); set
  /// this or cluster_secret, not both. Default: "".
  std::string cluster_secret_file;
};

/// Section `[autoscaler]`: adds capacity when a router or standalone node is
/// overloaded and gives it back when load stays low.
struct autoscaler_section {
  /// Run the autoscaler on a router or standalone node. Default: false.
  bool enabled = false;
  /// How often the load is sampled, in milliseconds. Default: 1000.
  uint32_t interval_ms = 1000;
  /// Queued requests above which the node counts as overloaded. Default: 32.
  uint32_t queue_depth_threshold = 32;
  /// P99 request latency in milliseconds above which the node counts as
  /// overloaded; 0 leaves latency out. Default: 0.
  uint32_t p99_threshold_ms = 0;
  /// How long overload must hold before a scale-up, in milliseconds.
  /// Default: 30000.
  uint32_t window_ms = 30000;
  /// Queued requests at or below which load counts as low. Default: 0.
  uint32_t scale_down_queue_depth = 0;
  /// How long low load must hold before a scale-down, in milliseconds.
  /// Default: 300000.
  uint32_t scale_down_window_ms = 300000;
  /// Time after an action during which no other is taken, in milliseconds.
  /// Default: 120000.
  uint32_t cooldown_ms = 120000;
  /// Experts with the most rows per second that a scale-up replicates.
  /// Default: 2.
  uint32_t hot_experts = 2;
  /// Replicas of one expert the autoscaler adds at most. Default: 1.
  uint32_t max_replicas_per_expert = 1;
  /// Bare worker nodes, as "host:port", that replicas are spawned on.
  /// Default: [] (none: the webhook alone).
  std::vector<std::string> spare_nodes;
  /// Bound on reaching a spare node and spawning replicas there, in
  /// milliseconds. Default: 10000.
  uint32_t spawn_timeout_ms = 10000;
  /// http:// or https:// URL that every action is POSTed to as JSON; "" posts
  /// nothing. Default: "".
  std::string webhook_url;
  /// Bound on one POST to the webhook (connect, send and answer), in
  /// milliseconds. Default: 2000.
  uint32_t webhook_timeout_ms = 2000;
  /// POSTs of one event after its first failed one. Default: 3.
  uint32_t webhook_retries = 3;
  /// Wait before the first retry, doubled before each later one, in
  /// milliseconds. Default: 500.
  uint32_t webhook_backoff_ms = 500;
};

/// The whole node configuration, one struct per TOML section.
struct node_config {
  node_section node;
  network_section network;
  model_section model;
  worker_section worker;
  router_section router;
  discovery_section discovery;
  metrics_section metrics;
  kv_cache_section kv_cache;
  engine_section engine;
  http_section http;
  security_section security;
  prefetch_section prefetch;
  autoscaler_section autoscaler;
  /// File name the config came from ("" for defaults only).
  std::string source;
};

/// Reads FILE, applies VOLT_<SECTION>_<KEY> overrides from `env` (pass the
/// process environment, e.g. from process_environment()), and validates
/// everything that can be checked without the model. Errors:
/// volt_errc::invalid_config, one line naming the file and key.
caf::expected<node_config>
load_node_config(const std::string& file,
                 const std::map<std::string, std::string>& env);

/// Same as load_node_config, from TOML text; `source_name` is used in messages.
caf::expected<node_config>
parse_node_config(const std::string& toml_text, const std::string& source_name,
                  const std::map<std::string, std::string>& env);

/// Builds a config from defaults plus `env` overrides only (no file).
caf::expected<node_config>
default_node_config(const std::map<std::string, std::string>& env);

/// Validation that needs the model's size: every [worker] experts id must be <
/// n_experts, and [prefetch] max_staged at most n_experts.
caf::error check_against_model(const node_config& cfg, uint32_t n_experts,
                               const std::string& model_config_file);

/// A node serves only with its links decided: the three [security] TLS files,
/// or [security] insecure = true. Not part of load_node_config, which also
/// serves clients and tools that open no node port.
caf::error check_link_security(const node_config& cfg);

/// Returns the process environment as a map (helper for main()).
std::map<std::string, std::string> process_environment();

} // namespace volt
