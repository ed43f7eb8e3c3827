#include "apps/remote_client.hpp"

#include <future>
#include <thread>

#include "actors/type_ids.hpp"
#include "base/error.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "caf/io/middleman.hpp"
#include "caf/io/middleman_actor.hpp"
#include "caf/scoped_actor.hpp"

namespace volt {

namespace {

using clock_type = std::chrono::steady_clock;

std::string name_of(const endpoint& where) {
  return render_endpoint(where.host, where.port);
}

} // namespace

caf::expected<engine_actor>
connect_engine(caf::actor_system& sys, const endpoint& where,
               clock_type::time_point deadline) {
  caf::scoped_actor self{sys};
  auto mm = sys.middleman().actor_handle();
  auto expected_ifs = sys.message_types<engine_actor>();
  caf::error last;
  while (clock_type::now() < deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock_type::now());
    engine_actor result;
    self
      ->request(mm, std::max(left, std::chrono::milliseconds{1}),
                caf::connect_atom_v, where.host, where.port)
      .receive(
        [&](const caf::node_id&, caf::strong_actor_ptr& ptr,
            const std::set<std::string>& ifs) {
          if (ptr && ifs == expected_ifs)
            result = caf::actor_cast<engine_actor>(std::move(ptr));
          else
            last = make_volt_error(volt_errc::invalid_config,
                                   name_of(where)
                                     + ": no Volt engine is published there "
                                       "(a worker's port?)");
        },
        [&](caf::error& err) { last = std::move(err); });
    if (result)
      return result;
    if (last == volt_errc::invalid_config)
      return last;
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
  }
  return make_volt_error(volt_errc::internal,
                         "cannot reach a Volt node at " + name_of(where)
                           + (last ? " (" + describe(last) + ")" : ""));
}

namespace {

using answers = std::vector<generate_result>;
using answer_promise = std::promise<caf::expected<answers>>;

/// The client's side of generations sent together (one when streamed); also
/// the sink of a streamed one.
stream_sink_actor::behavior_type
client(stream_sink_actor::pointer self, engine_actor eng, std::string node,
       std::vector<generate_request> reqs,
       clock_type::time_point ready_deadline, chunk_handler on_chunk,
       std::shared_ptr<answer_promise> answer) {
  auto done = std::make_shared<bool>(false);
  auto deliver = [=](caf::expected<answers> x) {
    if (!*done) {
      *done = true;
      answer->set_value(std::move(x));
      self->quit();
    }
  };
  // CAF does not fail a request whose receiver's node dies: watch it.
  self->monitor(eng);
  self->set_down_handler([=](caf::down_msg&) {
    deliver(
      make_volt_error(volt_errc::internal,
                      "the node at " + node + " went down before answering"));
  });
  auto left = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                         ready_deadline - clock_type::now()),
                       std::chrono::milliseconds{1});
  auto fail = [=](caf::error& err) { deliver(std::move(err)); };
  self->request(eng, left, ready_atom_v)
    .then(
      [=](bool) {
        if (!on_chunk) {
          auto results = std::make_shared<answers>(reqs.size());
          auto pending = std::make_shared<size_t>(reqs.size());
          for (size_t i = 0; i < reqs.size(); ++i)
            self->request(eng, caf::infinite, generate_atom_v, reqs[i])
              .then(
                [=](generate_result& res) {
                  (*results)[i] = std::move(res);
                  if (--*pending == 0)
                    deliver(std::move(*results));
                },
                fail);
          return;
        }
        // The id comes with every chunk; the answer only says it was queued.
        self
          ->request(eng, caf::infinite, stream_atom_v, reqs.front(),
                    caf::actor_cast<stream_sink_actor>(self))
          .then([](uint64_t) {}, fail);
      },
      [=](caf::error&) {
        // Say which experts are missing: the status line names them.
        self->request(eng, std::chrono::seconds{5}, status_atom_v)
          .then(
            [=](const std::string& status) {
              deliver(make_volt_error(volt_errc::missing_expert,
                                      "the node at " + node
                                        + " is not ready in time: " + status));
            },
            fail);
      });
  return {
    [=](const generate_chunk& c) { on_chunk(c); },
    [=](generate_end& end) {
      if (end.error)
        deliver(std::move(end.error));
      else
        deliver(answers{std::move(end.result)});
    },
  };
}

/// Runs `client` and waits for its answers.
caf::expected<answers> run_client(caf::actor_system& sys, engine_actor engine,
                                  const std::string& node,
                                  std::vector<generate_request> reqs,
                                  clock_type::time_point ready_deadline,
                                  chunk_handler on_chunk) {
  if (reqs.empty())
    return answers{};
  auto answer = std::make_shared<answer_promise>();
  auto future = answer->get_future();
  sys.spawn(client, std::move(engine), node, std::move(reqs), ready_deadline,
            std::move(on_chunk), answer);
  return future.get();
}

} // namespace

caf::expected<generate_result>
generate_on(caf::actor_system& sys, engine_actor engine,
            const std::string& node, const generate_request& req,
            clock_type::time_point ready_deadline, chunk_handler on_chunk) {
  auto all = run_client(sys, std::move(engine), node, {req}, ready_deadline,
                        std::move(on_chunk));
  if (!all)
    return std::move(all.error());
  return std::move(all->front());
}

caf::expected<std::vector<generate_result>>
generate_all_on(caf::actor_system& sys, engine_actor engine,
                const std::string& node,
                const std::vector<generate_request>& reqs,
                clock_type::time_point ready_deadline) {
  return run_client(sys, std::move(engine), node, reqs, ready_deadline, {});
}

caf::expected<generate_result>
generate_remote(caf::actor_system& sys, const endpoint& where,
                const generate_request& req, std::chrono::milliseconds wait,
                chunk_handler on_chunk) {
  auto deadline = clock_type::now() + wait;
  auto engine = connect_engine(sys, where, deadline);
  if (!engine)
    return std::move(engine.error());
  return generate_on(sys, *engine, name_of(where), req, deadline,
                     std::move(on_chunk));
}

} // namespace volt
