// The three roles of a volt-node process: standalone, worker and router.

#include "apps/node_roles.hpp"

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <future>
#include <mutex>
#include <thread>

#include <unistd.h>

#include "actors/cuda_expert.hpp"
#include "actors/discovery.hpp"
#include "actors/expert.hpp"
#include "actors/registrar.hpp"
#include "actors/standalone.hpp"
#include "actors/unexpected_messages.hpp"
#include "apps/commands.hpp"
#include "apps/node_api.hpp"
#include "apps/node_autoscaler.hpp"
#include "base/error.hpp"
#include "base/log.hpp"
#include "base/stop_request.hpp"
#include "caf/actor_system.hpp"
#include "caf/actor_system_config.hpp"
#include "caf/event_based_actor.hpp"
#include "caf/io/middleman.hpp"
#include "caf/scoped_actor.hpp"
#include "gpu/cpu/parallel.hpp"
#include "net/actor_system_setup.hpp"
#include "model/kv_cache.hpp"
#include "model/page_table.hpp"
#include "net/metrics.hpp"
#include "net/port_guard.hpp"
#include "net/tls_files.hpp"

namespace volt {

namespace {

/// How long shutdown waits for in-flight work before giving up.
constexpr auto drain_timeout = std::chrono::seconds{60};

/// The exit code a part that stopped the node asked for (set_stop_handler).
std::atomic<int> stop_code{0};

/// How long the actor system may take to stop once the node's work is done.
constexpr auto actor_system_stop_bound = std::chrono::seconds{5};

/// Returns `code`, bounding what follows: the actor system's destruction.
/// CAF 0.17 can deadlock there when a detached actor's private thread keeps
/// its own actor alive (actor-framework#1196, fixed in CAF 0.18; Debian 12
/// ships 0.17.6): a router whose streaming client had been killed hung so
/// once in a few dozen test runs. The node has drained and answered
/// everything by then, so past the bound it says why and exits with the code
/// it would have returned.
int bounded_stop(int code) {
  std::thread([code] {
    std::this_thread::sleep_for(actor_system_stop_bound);
    VOLT_WARN("node", "the actor system did not stop within "
                        << actor_system_stop_bound.count()
                        << " s after the node's work ended (CAF 0.17's "
                           "detached-actor shutdown race, "
                           "actor-framework#1196); exiting");
    std::_Exit(code != 0 ? code : stop_code.load());
  }).detach();
  return code;
}

/// Blocks SIGINT and SIGTERM in this thread and in every thread started later
/// (CAF's), so that the main thread receives them with sigwait.
sigset_t block_shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

void wait_for_shutdown_signal(const sigset_t& set) {
  int sig = 0;
  sigwait(&set, &sig);
  VOLT_INFO("node", "received " << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                                << ", shutting down");
}

std::string where(const node_config& cfg, uint16_t port) {
  return render_endpoint(cfg.network.host, port);
}

/// CAF's middleman listens here only; the node's public port is the guard's.
constexpr const char* loopback = "127.0.0.1";

/// Says how this node's links are secured, once its ports listen.
void log_link_security(const node_config& cfg, const tls_files* tls) {
  if (tls != nullptr) {
    VOLT_INFO("node", "node links on port "
                        << cfg.network.port
                        << " use mutual TLS: " << tls->summary());
    return;
  }
  VOLT_WARN("node",
            "[security] insecure = true: node links on port "
              << cfg.network.port
              << " are plaintext and unauthenticated; anyone who reaches "
                 "the port can send requests, use a worker's experts or "
                 "spawn experts on it (set tls_cert, tls_key and tls_ca for "
                 "mutual TLS)");
}

/// Serves [network] host:port through a port guard (net/port_guard.hpp) in
/// front of the middleman, which `open_middleman` opens on a free loopback
/// port (returning it). Peers and clients never see the loopback port.
/// With TLS the loopback port is CAF's TLS listener too: no plaintext port is
/// open anywhere, and a local process that skips the guard still needs a
/// certificate.
template <class OpenMiddleman>
caf::expected<std::unique_ptr<port_guard>>
serve_guarded(caf::actor_system& sys, const node_config& cfg,
              const tls_files* tls, std::shared_ptr<node_metrics> metrics,
              OpenMiddleman open_middleman) {
  port_guard::options opts;
  opts.host = cfg.network.host;
  opts.port = cfg.network.port;
  opts.metrics_port = cfg.metrics.port;
  opts.metrics = std::move(metrics);
  opts.tls = sys.has_openssl_manager();
  opts.busy_poll = std::chrono::microseconds{cfg.network.busy_poll_us};
  auto guard = port_guard::listen(std::move(opts));
  if (!guard)
    return make_volt_error(volt_errc::invalid_config,
                           cfg.source + ": [network] port: cannot listen on "
                             + where(cfg, cfg.network.port) + ": "
                             + describe(guard.error()));
  caf::expected<uint16_t> backend = open_middleman();
  if (!backend)
    return make_volt_error(volt_errc::internal,
                           "the middleman cannot listen on "
                             + std::string{loopback} + ": "
                             + describe(backend.error()));
  (*guard)->serve(*backend);
  log_link_security(cfg, tls);
  return guard;
}

/// Publishes `handle` with its typed interface behind the guard;
/// remote_actor callers must match the interface exactly.
template <class Handle>
caf::expected<std::unique_ptr<port_guard>>
publish(caf::actor_system& sys, const node_config& cfg, const tls_files* tls,
        const Handle& handle, std::shared_ptr<node_metrics> metrics) {
  return serve_guarded(sys, cfg, tls, std::move(metrics),
                       [&] { return publish_link(handle, 0, loopback); });
}

/// Starts the /metrics endpoint when [metrics] port is set.
caf::expected<std::unique_ptr<metrics_endpoint>>
start_metrics(const node_config& cfg, const node_metrics& metrics) {
  if (cfg.metrics.port == 0)
    return std::unique_ptr<metrics_endpoint>{};
  auto endpoint = metrics_endpoint::start(cfg.network.host, cfg.metrics.port,
                                          metrics.registry());
  if (!endpoint)
    return make_volt_error(volt_errc::invalid_config,
                           cfg.source + ": " + describe(endpoint.error()));
  VOLT_INFO("node",
            "metrics on http://" << where(cfg, cfg.metrics.port) << "/metrics");
  return endpoint;
}

/// Where this node's experts run and how many stay on its GPU, from
/// [worker] device, gpu_expert_slots and expert_misses and [model]
/// quantization (validated with the config).
cuda_expert_options expert_placement(const node_config& cfg,
                                     std::shared_ptr<node_metrics> metrics) {
  cuda_expert_options o;
  o.device = parse_device(cfg.worker.device).value_or(-1);
  auto quant = parse_quantization(cfg.model.quantization);
  o.quantization = quant ? *quant : weight_quantization::none;
  o.slots = cfg.worker.gpu_expert_slots;
  o.misses = cfg.worker.expert_misses;
  o.metrics = std::move(metrics);
  o.slots_origin = cfg.source + ": [worker] gpu_expert_slots =";
  return o;
}

/// The predictor's tunables from [prefetch].
prefetch::predictor_options
prefetch_options_of(const prefetch_section& section) {
  prefetch::predictor_options o;
  o.ngram_order = section.ngram_order;
  o.lookahead_tokens = section.lookahead_tokens;
  o.max_staged = section.max_staged;
  o.min_chance = static_cast<float>(section.min_chance_percent) / 100.0f;
  return o;
}

/// How a standalone or router node places its model and sizes its engine,
/// from [model], [worker], [router], [kv_cache], [engine] and [prefetch].
caf::expected<standalone_options>
placement_of(const node_config& cfg, const model_config& model,
             std::shared_ptr<node_metrics> metrics) {
  standalone_options options;
  options.experts = expert_placement(cfg, metrics);
  options.model_device = parse_device(cfg.model.device).value_or(-1);
  if (options.model_device >= 0)
    options.experts.device = -1;
  auto& opts = options.engine;
  opts.ready_timeout = std::chrono::milliseconds{cfg.router.ready_timeout_ms};
  opts.on_missing_expert = cfg.router.on_missing_expert;
  opts.page_size = cfg.kv_cache.page_size;
  if (options.model_device >= 0) {
    // The CUDA executor sizes its bf16 pool on the device.
    opts.num_pages = cfg.kv_cache.num_pages;
    options.kv_memory_mib = cfg.kv_cache.memory_mib;
    options.kv_memory_percent = cfg.kv_cache.gpu_memory_percent;
    options.show_progress = isatty(STDERR_FILENO) != 0;
    options.stage_predicted = cfg.prefetch.stage_experts;
    options.precise_activations = cfg.model.activations == "float32";
  } else {
    auto pages = kv_pool_pages(cfg.kv_cache.num_pages, cfg.kv_cache.memory_mib,
                               kv_bytes_per_page(model, opts.page_size),
                               model.max_position_embeddings, opts.page_size);
    if (!pages)
      return make_volt_error(volt_errc::invalid_config,
                             cfg.source + ": [kv_cache] "
                               + describe(pages.error()));
    opts.num_pages = *pages;
  }
  // Without either key the executor names config.json's context.
  if (cfg.kv_cache.num_pages > 0)
    options.kv_pool_origin = cfg.source + ": [kv_cache] num_pages = "
                             + std::to_string(cfg.kv_cache.num_pages);
  else if (cfg.kv_cache.memory_mib > 0)
    options.kv_pool_origin = cfg.source + ": [kv_cache] memory_mib = "
                             + std::to_string(cfg.kv_cache.memory_mib);
  opts.batching.max_queue = cfg.engine.max_queue;
  opts.batching.max_batch = cfg.engine.max_batch;
  opts.batching.prefill_chunk = cfg.engine.prefill_chunk;
  cpu::set_compute_threads(static_cast<int>(cfg.engine.compute_threads));
  cpu::set_rows_per_part(cfg.engine.rows_per_part);
  opts.metrics = std::move(metrics);
  if (cfg.prefetch.enabled)
    opts.prefetch = prefetch_options_of(cfg.prefetch);
  opts.stage_on_hosts = cfg.prefetch.stage_experts;
  opts.node_id = cfg.node.id;
  opts.role = to_string(cfg.node.role);
  return options;
}

/// Logs the checkpoint's fingerprint once the node has passed its start-up
/// checks (a node that fails them says only why): routers refuse workers
/// whose fingerprint differs from theirs, and this line lets an operator
/// compare nodes.
void log_fingerprint(const node_config& cfg, const checkpoint& ckpt) {
  VOLT_INFO("node", "checkpoint " << cfg.model.path << " has the fingerprint "
                                  << ckpt.fingerprint());
}

/// Says at start whether this node's Redis records are authenticated.
void log_record_signing(const node_config& cfg, const char* what) {
  if (cfg.discovery.mode != discovery_mode::redis)
    return;
  if (cfg.security.cluster_secret.empty())
    VOLT_WARN("node", "Redis worker records are not signed ([security] "
                      "cluster_secret is empty): whoever can write to Redis "
                      "can point routers at hosts of their choosing");
  else
    VOLT_INFO("node", what << " Redis worker records with [security] "
                              "cluster_secret");
}

/// Waits for the engine to finish what is queued and running.
void drain(caf::actor_system& sys, const engine_actor& eng) {
  caf::scoped_actor self{sys};
  self->request(eng, drain_timeout, drain_atom_v)
    .receive([](bool) { VOLT_INFO("node", "in-flight requests finished"); },
             [](caf::error& err) {
               VOLT_WARN("node", "requests still in flight at shutdown: "
                                   << describe(err));
             });
}

/// Logs `line`, the "ready: ..." announcement that operators and scripts
/// wait for, once the node serves: through its HTTP API where it has one (a
/// completion sent after the line is taken, not refused as not ready), else
/// when the engine answers that every expert has a host.
void announce_ready(caf::actor_system& sys, const engine_actor& eng,
                    http::api_server* api, std::string line) {
  auto log = [line = std::move(line)] { VOLT_INFO("node", line); };
  if (api) {
    api->when_ready(std::move(log));
    return;
  }
  sys.spawn([eng, log](caf::event_based_actor* self) {
    self->request(eng, caf::infinite, ready_atom_v).then([log](bool) {
      log();
    });
  });
}

struct volt_config : caf::actor_system_config {
  volt_config(const node_config& cfg, const tls_files* tls) {
    configure_actor_system(
      *this, std::chrono::milliseconds{cfg.network.peer_timeout_ms}, tls);
  }
};

int run_standalone(const node_config& cfg, const checkpoint& ckpt,
                   const tls_files* tls, const sigset_t& signals) {
  volt_config sys_cfg{cfg, tls};
  // Outlives the actor system, so that its last answers reach the clients.
  std::unique_ptr<port_guard> guard;
  caf::actor_system sys{sys_cfg};
  auto metrics = std::make_shared<node_metrics>(cfg.node.id);
  auto options = placement_of(cfg, ckpt.config(), metrics);
  if (!options)
    return report_error(options.error());
  auto endpoint = start_metrics(cfg, *metrics);
  if (!endpoint)
    return report_error(endpoint.error());
  auto eng = spawn_standalone(sys, ckpt, *options);
  if (!eng)
    return report_error(eng.error());
  auto published = publish(sys, cfg, tls, *eng, metrics);
  if (!published) {
    caf::anon_send_exit(*eng, caf::exit_reason::user_shutdown);
    return report_error(published.error());
  }
  guard = std::move(*published);
  // Declared after the actor system: it stops before the system does.
  auto api = start_node_api(sys, cfg, ckpt, *eng, metrics);
  if (!api) {
    caf::anon_send_exit(*eng, caf::exit_reason::user_shutdown);
    return report_error(api.error());
  }
  log_fingerprint(cfg, ckpt);
  auto scaler = start_autoscaler(sys, cfg, *eng, metrics, false,
                                 ckpt.fingerprint());
  announce_ready(sys, *eng, api->get(),
                 "ready: standalone node '" + cfg.node.id + "' serving on "
                   + where(cfg, guard->port()));
  wait_for_shutdown_signal(signals);
  // HTTP requests in flight finish first: they need the engine.
  if (*api)
    (*api)->stop();
  guard->stop_accepting();
  sys.middleman().unpublish(*eng, guard->backend_port());
  drain(sys, *eng);
  scaler.stop();
  caf::anon_send_exit(*eng, caf::exit_reason::user_shutdown);
  return bounded_stop(0);
}

/// Expert actors that routers spawned on this worker, stopped at shutdown.
struct spawned_experts {
  std::mutex mtx;
  std::vector<expert_actor> actors;
};

int run_worker(const node_config& cfg, const checkpoint& ckpt,
               const tls_files* tls, const sigset_t& signals) {
  auto metrics = std::make_shared<node_metrics>(cfg.node.id);
  auto spawned = std::make_shared<spawned_experts>();
  volt_config sys_cfg{cfg, tls};
  // Routers with a [router] placement spawn expert actors here; they load the
  // weights from this node's own checkpoint.
  sys_cfg.add_actor_type(
    expert_actor_type,
    [ckpt, metrics, spawned, placement = expert_placement(cfg, metrics)](
      expert_actor::pointer self, std::vector<uint32_t> ids,
      std::string router_checkpoint) -> expert_actor::behavior_type {
      drop_unexpected_messages(self);
      // A failed spawn leaves an actor that tells the router why, when it
      // asks what the actor hosts (as it does before using it), and then
      // quits.
      auto failed = [&](const caf::error& err) -> expert_actor::behavior_type {
        VOLT_ERROR("worker", "cannot spawn experts " << expert_pool::render(ids)
                                                     << ": " << describe(err));
        return {
          [err](const expert_batch&) -> caf::result<wire_tensor> {
            return err;
          },
          [self, err](hosted_atom) -> caf::result<expert_hello> {
            self->send_exit(self, err);
            return err;
          },
        };
      };
      // Weights of another checkpoint would give the router wrong answers.
      if (router_checkpoint != ckpt.fingerprint())
        return failed(make_volt_error(
          volt_errc::invalid_checkpoint,
          "this node's checkpoint " + ckpt.dir() + " has the fingerprint "
            + ckpt.fingerprint() + ", the router's has "
            + (router_checkpoint.empty() ? "none" : router_checkpoint)));
      auto remember = [&] {
        std::lock_guard<std::mutex> guard{spawned->mtx};
        spawned->actors.push_back(caf::actor_cast<expert_actor>(self));
        VOLT_INFO("worker", "spawned experts " << expert_pool::render(ids)
                                               << " for a router");
      };
      if (placement.device < 0) {
        auto weights = expert_weights::load(ckpt, ids);
        if (!weights)
          return failed(weights.error());
        remember();
        return metered_expert(self, *weights, metrics);
      }
      // On a GPU the work runs in a detached CUDA actor; this one forwards.
      auto gpu = spawn_cuda_expert(self->system(), ckpt, ids, placement);
      if (!gpu)
        return failed(gpu.error());
      remember();
      self->link_to(*gpu);
      return {
        [self, gpu = *gpu](expert_batch& batch) {
          return self->delegate(gpu, std::move(batch));
        },
        [self, gpu = *gpu](hosted_atom) {
          return self->delegate(gpu, hosted_atom_v);
        },
      };
    });
  // Outlives the actor system, so that its last answers reach the routers.
  std::unique_ptr<port_guard> guard;
  caf::actor_system sys{sys_cfg};
  auto endpoint = start_metrics(cfg, *metrics);
  if (!endpoint)
    return report_error(endpoint.error());
  expert_actor host;
  if (!cfg.worker.experts.empty()) {
    auto placement = expert_placement(cfg, metrics);
    placement.show_progress = isatty(STDERR_FILENO) != 0;
    auto spawned_host = spawn_expert_host(sys, ckpt, cfg.worker.experts,
                                          placement);
    if (!spawned_host)
      return report_error(spawned_host.error());
    host = *spawned_host;
    auto published = publish(sys, cfg, tls, host, metrics);
    if (!published) {
      caf::anon_send_exit(host, caf::exit_reason::user_shutdown);
      return report_error(published.error());
    }
    guard = std::move(*published);
  } else {
    // Nothing published: the port serves routers' remote spawns.
    auto opened = serve_guarded(sys, cfg, tls, metrics, [&] {
      return open_link_port(sys, 0, loopback);
    });
    if (!opened)
      return report_error(opened.error());
    guard = std::move(*opened);
  }
  auto port = guard->port();
  registrar_actor reg;
  if (cfg.discovery.mode == discovery_mode::redis) {
    registrar_options opts;
    opts.redis = *parse_redis_url(cfg.discovery.redis_url);
    opts.record = worker_record{cfg.node.id,        cfg.network.host,  port,
                                cfg.worker.experts, cfg.worker.device, 0.0};
    opts.heartbeat = std::chrono::milliseconds{cfg.discovery.heartbeat_ms};
    opts.ttl = std::chrono::milliseconds{cfg.discovery.ttl_ms};
    opts.metrics = metrics;
    opts.secret = cfg.security.cluster_secret;
    log_record_signing(cfg, "signing its");
    reg = sys.spawn<caf::detached>(registrar, std::move(opts));
  }
  log_fingerprint(cfg, ckpt);
  VOLT_INFO("node", "ready: worker '" << cfg.node.id << "' serving experts ["
                                      << expert_pool::render(cfg.worker.experts)
                                      << "] on " << where(cfg, port));
  wait_for_shutdown_signal(signals);
  caf::scoped_actor self{sys};
  if (reg)
    self->request(reg, std::chrono::seconds{5}, unregister_atom_v)
      .receive([](bool) {}, [](caf::error&) {});
  if (host) {
    // The mailbox is FIFO: this answer comes after every batch before it.
    self->request(host, drain_timeout, hosted_atom_v)
      .receive([](const expert_hello&) {}, [](caf::error&) {});
    VOLT_INFO("node", "in-flight expert batches finished");
    self->send_exit(host, caf::exit_reason::user_shutdown);
  }
  if (reg)
    self->send_exit(reg, caf::exit_reason::user_shutdown);
  // Refuse new connections from here on, as the middleman's own port did
  // while the actor system shut down.
  guard->stop_accepting();
  std::lock_guard<std::mutex> lock{spawned->mtx};
  for (auto& actor : spawned->actors)
    self->send_exit(actor, caf::exit_reason::user_shutdown);
  return bounded_stop(0);
}

int run_router(const node_config& cfg, const checkpoint& ckpt,
               const tls_files* tls, const sigset_t& signals) {
  volt_config sys_cfg{cfg, tls};
  // Outlives the actor system, so that its last answers reach the clients.
  std::unique_ptr<port_guard> guard;
  caf::actor_system sys{sys_cfg};
  auto metrics = std::make_shared<node_metrics>(cfg.node.id);
  auto endpoint = start_metrics(cfg, *metrics);
  if (!endpoint)
    return report_error(endpoint.error());
  auto options = placement_of(cfg, ckpt.config(), metrics);
  if (!options)
    return report_error(options.error());
  // The router's executor computes no expert: every one lives on workers.
  auto exec = make_executor(ckpt, *options, false);
  if (!exec)
    return report_error(exec.error());
  discovery_options opts;
  opts.mode = cfg.discovery.mode;
  opts.workers = cfg.router.workers;
  opts.placement = cfg.router.placement;
  if (cfg.discovery.mode == discovery_mode::redis)
    opts.redis = *parse_redis_url(cfg.discovery.redis_url);
  opts.poll = std::chrono::milliseconds{cfg.discovery.poll_ms};
  opts.checkpoint = ckpt.fingerprint();
  opts.secret = cfg.security.cluster_secret;
  // The engine runs its discovery: operators place experts through it.
  options->engine.discovery = std::move(opts);
  auto eng = spawn_engine(sys, std::move(*exec), std::vector<expert_host>{},
                          options->engine);
  auto published = publish(sys, cfg, tls, eng, metrics);
  if (!published) {
    caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
    return report_error(published.error());
  }
  guard = std::move(*published);
  auto api = start_node_api(sys, cfg, ckpt, eng, metrics);
  if (!api) {
    caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
    return report_error(api.error());
  }
  log_fingerprint(cfg, ckpt);
  log_record_signing(cfg, "accepting only signed");
  auto scaler = start_autoscaler(sys, cfg, eng, metrics, true,
                                 ckpt.fingerprint());
  VOLT_INFO("node", "router '" << cfg.node.id << "' accepts clients on "
                               << where(cfg, guard->port())
                               << "; waiting for every expert to have a host");
  announce_ready(sys, eng, api->get(),
                 "ready: router '" + cfg.node.id + "' serving on "
                   + where(cfg, guard->port()) + " with every expert hosted");
  wait_for_shutdown_signal(signals);
  if (*api)
    (*api)->stop();
  guard->stop_accepting();
  sys.middleman().unpublish(eng, guard->backend_port());
  drain(sys, eng);
  scaler.stop();
  caf::anon_send_exit(eng, caf::exit_reason::user_shutdown);
  return bounded_stop(0);
}

} // namespace

int run_node(const node_config& cfg, const checkpoint& ckpt,
             const tls_files* tls) {
  auto signals = block_shutdown_signals();
  // A part that must not go on (its checkpoint changed on disk) has answered
  // its requests with the error; the node then shuts down as on SIGTERM and
  // exits with the code it asked for.
  set_stop_handler([](int code) {
    stop_code = code;
    VOLT_ERROR("node", "stopping after the error above (exit code " << code
                                                                    << ")");
    ::kill(::getpid(), SIGTERM);
  });
  int code = 1;
  switch (cfg.node.role) {
    case node_role::standalone:
      code = run_standalone(cfg, ckpt, tls, signals);
      break;
    case node_role::worker: code = run_worker(cfg, ckpt, tls, signals); break;
    case node_role::router: code = run_router(cfg, ckpt, tls, signals); break;
  }
  set_stop_handler(nullptr);
  return code != 0 ? code : stop_code.load();
}

} // namespace volt
