#include "http/engine_bridge.hpp"

#include <random>
#include <unordered_map>

#include "caf/event_based_actor.hpp"
#include "caf/scoped_actor.hpp"
#include "caf/typed_event_based_actor.hpp"

namespace volt::http {

namespace {

/// Request ids chosen here, before submitting, so that the sink can tell the
/// prompts apart from the first chunk on (a chunk may beat the submit's
/// answer). Random 64-bit ids, as the engine suggests, rarely meet another
/// client's; a clash is refused and reported like any bad request.
uint64_t fresh_id() {
  static thread_local std::mt19937_64 gen{std::random_device{}()};
  uint64_t id = 0;
  while (id == 0)
    id = gen();
  return id;
}

/// The sink of one HTTP request's engine requests: turns chunks and ends
/// into events on `queue`. It watches the engine, whose death would
/// otherwise leave the HTTP thread waiting for an end that never comes.
stream_sink_actor::behavior_type
sink(stream_sink_actor::pointer self, engine_actor engine,
     std::unordered_map<uint64_t, size_t> prompts,
     std::shared_ptr<event_queue> queue) {
  self->monitor(engine);
  self->set_down_handler([=](caf::down_msg& msg) {
    for (const auto& [id, prompt] : prompts) {
      prompt_end end;
      end.prompt = prompt;
      end.error = msg.reason ? msg.reason
                             : caf::make_error(caf::sec::request_receiver_down);
      queue->push(std::move(end));
    }
    self->quit();
  });
  return {
    [=](generate_chunk& c) {
      auto i = prompts.find(c.id);
      if (i == prompts.end())
        return;
      queue->push(sequence_event{i->second, std::move(c)});
    },
    [=](generate_end& end) {
      auto i = prompts.find(end.id);
      if (i != prompts.end())
        queue->push(prompt_end{i->second, std::move(end.error),
                               std::move(end.result.degraded_experts),
                               end.result.degraded_tokens});
    },
  };
}

} // namespace

void event_queue::push(engine_event event) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    events_.push_back(std::move(event));
  }
  cv_.notify_one();
}

std::optional<engine_event>
event_queue::pop(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock{mtx_};
  if (!cv_.wait_for(lock, timeout, [this] { return !events_.empty(); }))
    return std::nullopt;
  auto event = std::move(events_.front());
  events_.pop_front();
  return event;
}

generation::generation(caf::actor_system& sys, engine_actor engine,
                       std::vector<uint64_t> ids)
  : sys_(sys), engine_(std::move(engine)), ids_(std::move(ids)),
    queue_(std::make_shared<event_queue>()), unfinished_(ids_.size()) {
  std::unordered_map<uint64_t, size_t> prompts;
  for (size_t p = 0; p < ids_.size(); ++p)
    prompts.emplace(ids_[p], p);
  sink_ = sys_.spawn(sink, engine_, std::move(prompts), queue_);
}

generation::~generation() {
  if (unfinished_ > 0)
    for (size_t p = 0; p < ids_.size(); ++p)
      cancel(p, -1, "cancelled");
  // The engine monitors the sink too: requests it still has end with it.
  caf::anon_send_exit(sink_, caf::exit_reason::user_shutdown);
}

std::optional<engine_event>
generation::next(std::chrono::milliseconds timeout) {
  auto event = queue_->pop(timeout);
  if (event && std::holds_alternative<prompt_end>(*event) && unfinished_ > 0)
    --unfinished_;
  return event;
}

void generation::cancel(size_t prompt, int32_t sequence,
                        const std::string& reason) {
  if (prompt >= ids_.size())
    return;
  // The answer (whether anything was left to end) changes nothing here.
  caf::anon_send(engine_, cancel_atom_v,
                 cancel_request{ids_[prompt], reason, sequence});
}

engine_bridge::engine_bridge(caf::actor_system& sys, engine_actor engine)
  : sys_(sys), engine_(std::move(engine)),
    readiness_(std::make_shared<readiness>()) {
  watcher_ = sys_.spawn([engine = engine_, rd = readiness_](
                          caf::event_based_actor* self) -> caf::behavior {
    self->monitor(engine);
    self->set_down_handler(
      [rd](caf::down_msg&) { rd->state = gone_state; });
    self->request(engine, caf::infinite, ready_atom_v).then([rd](bool) {
      std::vector<std::function<void()>> waiters;
      {
        std::lock_guard<std::mutex> guard{rd->mtx};
        int waiting = waiting_state;
        if (!rd->state.compare_exchange_strong(waiting, ready_state))
          return;
        waiters.swap(rd->waiters);
      }
      for (auto& fn : waiters)
        fn();
    });
    // Stays alive for the down message; nothing else is sent to it.
    return {[](tick_atom) {}};
  });
}

void engine_bridge::when_ready(std::function<void()> fn) {
  {
    std::lock_guard<std::mutex> guard{readiness_->mtx};
    if (readiness_->state.load() != ready_state) {
      readiness_->waiters.push_back(std::move(fn));
      return;
    }
  }
  fn();
}

engine_bridge::~engine_bridge() {
  caf::anon_send_exit(watcher_, caf::exit_reason::user_shutdown);
}

caf::expected<std::unique_ptr<generation>>
engine_bridge::start(std::vector<generate_request> requests) {
  std::vector<uint64_t> ids;
  for (auto& req : requests) {
    req.id = fresh_id();
    ids.push_back(req.id);
  }
  auto gen = std::make_unique<generation>(sys_, engine_, ids);
  caf::scoped_actor self{sys_};
  // Every request goes out before the first answer is awaited, so that the
  // engine batches the prompts together.
  using handle_type = decltype(self->request(engine_, caf::infinite,
                                             stream_atom_v, generate_request{},
                                             gen->sink_));
  std::vector<handle_type> pending;
  for (auto& req : requests)
    pending.push_back(self->request(engine_, caf::infinite, stream_atom_v,
                                    std::move(req), gen->sink_));
  caf::error refused;
  for (auto& handle : pending)
    handle.receive([](uint64_t) {},
                   [&](caf::error& err) {
                     if (!refused)
                       refused = std::move(err);
                   });
  if (refused)
    return refused; // the destructor cancels those that were queued
  return gen;
}

} // namespace volt::http
