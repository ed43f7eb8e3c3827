#include "http/webhook.hpp"

#include <deque>
#include <string>

#include <httplib.h>

#include "actors/unexpected_messages.hpp"
#include "base/log.hpp"
#include "caf/typed_event_based_actor.hpp"
#include "model/json.hpp"

namespace volt::http {

namespace {

/// Events wait here while an earlier one is retried; beyond this many the
/// oldest is dropped, so a webhook that is down for good costs bounded
/// memory.
constexpr size_t max_waiting_events = 64;

struct webhook_state {
  webhook_options options;
  /// Events not yet delivered or given up, oldest first.
  std::deque<std::string> events;
  /// POSTs of the oldest event so far.
  uint32_t attempts = 0;
  /// A retry of the oldest event is scheduled.
  bool waiting = false;

  static inline const char* name = "volt.webhook";
};

using webhook_pointer = webhook_actor::stateful_pointer<webhook_state>;

/// The "action" of an event, for log lines.
std::string action_of(const std::string& event) {
  auto doc = json::parse(event, "event");
  auto action = doc ? json::find(*doc, "action") : nullptr;
  if (action != nullptr && action->is_string())
    return action->get<std::string>();
  return "event";
}

/// A failed POST in words: httplib names its errors tersely ("Read").
std::string describe_failure(httplib::Error err,
                             std::chrono::milliseconds timeout) {
  auto ms = std::to_string(timeout.count()) + " ms";
  switch (err) {
    case httplib::Error::Connection: return "cannot connect";
    case httplib::Error::ConnectionTimeout: return "no connection within " + ms;
    case httplib::Error::Read:
      return "no answer within " + ms + " (or the connection broke)";
    case httplib::Error::Write: return "cannot send the event";
    case httplib::Error::SSLConnection: return "TLS handshake failed";
    case httplib::Error::SSLServerVerification:
      return "the server's TLS certificate does not verify";
    default: return "HTTP client error " + httplib::to_string(err);
  }
}

/// One POST; "" when the webhook took it (2xx), else why not.
std::string post_once(const webhook_options& opts, const std::string& event) {
  httplib::Client client{render_http_origin(opts.url)};
  auto seconds = static_cast<time_t>(opts.timeout.count() / 1000);
  auto micros = static_cast<time_t>(opts.timeout.count() % 1000 * 1000);
  client.set_connection_timeout(seconds, micros);
  client.set_read_timeout(seconds, micros);
  client.set_write_timeout(seconds, micros);
  client.set_keep_alive(false);
  auto res = client.Post(opts.url.path, event, "application/json");
  if (!res)
    return describe_failure(res.error(), opts.timeout);
  if (res->status < 200 || res->status > 299)
    return "HTTP status " + std::to_string(res->status);
  return {};
}

/// POSTs the oldest events until one fails and waits for its retry, or
/// none is left.
void deliver(webhook_pointer self) {
  auto& st = self->state;
  const auto& opts = st.options;
  auto origin = render_http_origin(opts.url);
  while (!st.waiting && !st.events.empty()) {
    const auto& event = st.events.front();
    ++st.attempts;
    auto problem = post_once(opts, event);
    if (opts.metrics)
      opts.metrics->webhook_post(problem.empty() ? "ok" : "error");
    auto tries = "attempt " + std::to_string(st.attempts) + " of "
                 + std::to_string(opts.retries + 1);
    if (problem.empty()) {
      VOLT_INFO("webhook", "posted " << action_of(event) << " to " << origin
                                     << " (" << tries << ")");
    } else if (st.attempts <= opts.retries) {
      auto delay = opts.backoff
                   * (int64_t{1} << std::min(st.attempts - 1, 20u));
      VOLT_WARN("webhook", "POST of " << action_of(event) << " to " << origin
                                      << " failed (" << tries
                                      << "): " << problem << "; retrying in "
                                      << delay.count() << " ms");
      st.waiting = true;
      self->delayed_send(self, delay, tick_atom_v);
      return;
    } else {
      VOLT_ERROR("webhook", "POST of " << action_of(event) << " to " << origin
                                       << " failed (" << tries
                                       << "): " << problem
                                       << "; giving up on this event");
    }
    st.events.pop_front();
    st.attempts = 0;
  }
}

webhook_actor::behavior_type webhook(webhook_pointer self,
                                     webhook_options options) {
  self->state.options = std::move(options);
  drop_unexpected_messages(self);
  return {
    [self](post_atom, std::string& event) {
      auto& st = self->state;
      if (st.events.size() >= max_waiting_events) {
        VOLT_ERROR("webhook", max_waiting_events
                                << " events wait for the webhook; dropping "
                                   "the oldest ("
                                << action_of(st.events.front()) << ")");
        st.events.pop_front();
        st.attempts = 0;
      }
      st.events.push_back(std::move(event));
      deliver(self);
    },
    [self](tick_atom) {
      self->state.waiting = false;
      deliver(self);
    },
  };
}

} // namespace

webhook_actor spawn_webhook(caf::actor_system& sys, webhook_options options) {
  return sys.spawn<caf::detached>(webhook, std::move(options));
}

} // namespace volt::http
