#include "apps/shell_session.hpp"

#include <atomic>
#include <future>
#include <memory>
#include <sstream>

#include "apps/remote_client.hpp"
#include "apps/shell_render.hpp"
#include "base/error.hpp"
#include "caf/event_based_actor.hpp"
#include "config/did_you_mean.hpp"

namespace volt {

namespace {

using namespace std::chrono_literals;

/// How long a command waits for the node's answer. A spawn waits while the
/// worker loads the experts' weights (the router's discovery gives it 300 s);
/// a drain while the step in flight finishes.
constexpr auto inspect_timeout = 15s;
constexpr auto spawn_timeout = 330s;
constexpr auto drain_timeout = 330s;

/// The largest expert id a command takes: a range of billions of ids would
/// be expanded here before the node could check them against its model.
constexpr uint32_t max_expert_id = 65535;

caf::error usage_error(const std::string& text) {
  return make_volt_error(volt_errc::invalid_request, text);
}

std::vector<std::string> split_words(const std::string& line) {
  std::istringstream in{line};
  std::vector<std::string> words;
  for (std::string w; in >> w;)
    words.push_back(w);
  return words;
}

caf::expected<uint32_t> parse_expert_id(const std::string& text) {
  if (text.empty() || text.size() > 5
      || text.find_first_not_of("0123456789") != std::string::npos
      || std::stoul(text) > max_expert_id)
    return usage_error("spawn: '" + text + "' is not an expert id (0 to "
                       + std::to_string(max_expert_id) + ")");
  return static_cast<uint32_t>(std::stoul(text));
}

const shell_command_spec* find_command(const std::string& name) {
  for (const auto& c : shell_commands())
    if (c.name == name)
      return &c;
  return nullptr;
}

std::string help_text(const std::vector<std::string>& words) {
  if (words.size() > 1) {
    const auto* c = find_command(words[1]);
    if (c != nullptr)
      return "usage: " + c->usage + "\n  " + c->help + "\n";
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : shell_commands())
    rows.push_back({"  " + c.usage, c.help});
  return "commands:\n" + render_table(rows);
}

} // namespace

const std::vector<shell_command_spec>& shell_commands() {
  static const std::vector<shell_command_spec> commands{
    {"nodes", "nodes",
     "the node and its workers: id, role, address, liveness, experts, load"},
    {"experts", "experts",
     "per expert: hosts, replicas, rows in flight, requests/s, rows/s"},
    {"queue", "queue",
     "queued and running work, request counters, experts without a host"},
    {"requests", "requests",
     "requests in flight: state, age, prompt and generated tokens"},
    {"kv", "kv", "KV pages used, free and shared; prefix-cache hits"},
    {"metrics", "metrics [PREFIX]",
     "the node's Prometheus metrics whose name starts with PREFIX"},
    {"spawn", "spawn EXPERTS on NODE",
     "spawn experts (4,5 or 0-3) on the worker NODE (host:port) and use "
     "them"},
    {"drain", "drain NODE",
     "send NODE no new rows, let its rows in flight finish, release it"},
    {"help", "help [COMMAND]", "this list, or one command's usage"},
    {"quit", "quit", "leave the shell (also: exit, Ctrl-D)"},
  };
  return commands;
}

caf::expected<std::vector<uint32_t>>
parse_expert_list(const std::vector<std::string>& words) {
  std::string text;
  for (const auto& w : words)
    text += w;
  std::vector<uint32_t> ids;
  std::istringstream in{text};
  for (std::string item; std::getline(in, item, ',');) {
    auto dash = item.find('-');
    auto first = parse_expert_id(item.substr(0, dash));
    if (!first)
      return std::move(first.error());
    auto last = dash == std::string::npos ? first
                                          : parse_expert_id(item.substr(dash
                                                                        + 1));
    if (!last)
      return std::move(last.error());
    if (*last < *first)
      return usage_error("spawn: '" + item + "' is an empty range");
    for (auto e = *first; e <= *last; ++e)
      ids.push_back(e);
  }
  if (ids.empty())
    return usage_error("spawn: name at least one expert");
  return ids;
}

shell_session::shell_session(caf::actor_system& sys, endpoint where,
                             std::chrono::milliseconds wait)
  : sys_(sys), where_(std::move(where)),
    address_(render_endpoint(where_.host, where_.port)), wait_(wait) {
}

caf::error shell_session::connect() {
  auto engine = connect_engine(sys_, where_,
                               std::chrono::steady_clock::now() + wait_);
  if (!engine)
    return std::move(engine.error());
  engine_ = std::move(*engine);
  return {};
}

template <class Reply, class... Ts>
caf::expected<Reply> shell_session::ask(std::chrono::milliseconds timeout,
                                        Ts... xs) {
  if (!engine_)
    if (auto err = connect())
      return err;
  auto answer = std::make_shared<std::promise<caf::expected<Reply>>>();
  auto future = answer->get_future();
  auto node = address_;
  auto engine = engine_;
  auto lost = std::make_shared<std::atomic<bool>>(false);
  sys_.spawn([=](caf::event_based_actor* self) {
    auto done = std::make_shared<bool>(false);
    auto deliver = [=](caf::expected<Reply> x) {
      if (!*done) {
        *done = true;
        answer->set_value(std::move(x));
        self->quit();
      }
    };
    // CAF does not fail a request whose receiver's node dies: watch it.
    self->monitor(engine);
    self->set_down_handler([=](caf::down_msg&) {
      lost->store(true);
      deliver(make_volt_error(volt_errc::internal,
                              "the node at " + node
                                + " went down before answering"));
    });
    self->request(engine, timeout, xs...)
      .then([=](Reply& reply) { deliver(std::move(reply)); },
            [=](caf::error& err) { deliver(std::move(err)); });
  });
  auto result = future.get();
  if (lost->load())
    engine_ = nullptr; // the next command connects again
  return result;
}

caf::expected<std::string> shell_session::run(const std::string& line) {
  auto words = split_words(line);
  if (words.empty())
    return std::string{};
  const auto& name = words[0];
  const auto* command = find_command(name == "exit" ? "quit" : name);
  if (command == nullptr) {
    std::vector<std::string> names;
    for (const auto& c : shell_commands())
      names.push_back(c.name);
    auto near = closest_match(name, names);
    return usage_error("unknown command '" + name + "'"
                       + (near.empty() ? "" : " (did you mean '" + near + "'?)")
                       + "; 'help' lists the commands");
  }
  if (command->name == "help")
    return help_text(words);
  if (command->name == "spawn")
    return spawn(words);
  if (command->name == "drain")
    return drain(words);
  bool takes_argument = command->name == "metrics";
  if (words.size() > (takes_argument ? 2u : 1u))
    return usage_error(command->name + ": too many arguments (usage: "
                       + command->usage + ")");
  if (command->name == "quit") {
    done_ = true;
    return std::string{};
  }
  auto report = ask<node_report>(inspect_timeout, inspect_atom_v);
  if (!report)
    return std::move(report.error());
  if (command->name == "nodes")
    return render_nodes(*report, address_);
  if (command->name == "experts")
    return render_experts(*report);
  if (command->name == "queue")
    return render_queue(*report);
  if (command->name == "requests")
    return render_requests(*report);
  if (command->name == "kv")
    return render_kv(*report);
  // metrics
  if (report->metrics.empty())
    return usage_error("metrics: the node at " + address_
                       + " keeps no metrics");
  auto prefix = words.size() > 1 ? words[1] : std::string{};
  auto text = filter_metrics(report->metrics, prefix);
  if (text.empty())
    return "(no metric name starts with '" + prefix + "')\n";
  return text;
}

caf::expected<std::string>
shell_session::spawn(const std::vector<std::string>& words) {
  // spawn EXPERTS... on NODE
  auto on = std::find(words.begin(), words.end(), "on");
  if (words.size() < 4 || on == words.end() || on == words.begin() + 1
      || on + 2 != words.end())
    return usage_error("spawn: usage: spawn EXPERTS on NODE (e.g. spawn 4,5 "
                       "on 10.0.0.7:7801)");
  auto experts = parse_expert_list({words.begin() + 1, on});
  if (!experts)
    return std::move(experts.error());
  const auto& node = *(on + 1);
  auto placed = ask<std::string>(spawn_timeout, place_atom_v, node, *experts);
  if (!placed)
    return std::move(placed.error());
  return "spawned experts " + render_expert_ranges(*experts) + " on "
         + *placed + "; they take rows now\n";
}

caf::expected<std::string>
shell_session::drain(const std::vector<std::string>& words) {
  if (words.size() != 2)
    return usage_error("drain: usage: drain NODE (e.g. drain 10.0.0.7:7801)");
  auto released = ask<std::vector<uint32_t>>(drain_timeout, drain_atom_v,
                                             words[1]);
  if (!released)
    return std::move(released.error());
  return "drained " + words[1] + ": its rows in flight finished; experts "
         + render_expert_ranges(*released) + " released there\n";
}

} // namespace volt
