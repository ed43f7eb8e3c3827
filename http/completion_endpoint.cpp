// POST /v1/completions and /v1/chat/completions.

#include <httplib.h>

#include "http/completion_run.hpp"
#include "http/connection_watch.hpp"
#include "http/endpoints.hpp"
#include "http/json_fields.hpp"

namespace volt::http {

namespace {

/// How often a waiting handler checks whether its client went away.
constexpr auto poll_interval = std::chrono::milliseconds{100};

/// Waits for the whole answer, cancelling it if the client leaves.
void answer_whole(completion_run& run, const response_meta& meta,
                  const connection_watch& watch, httplib::Response& res) {
  auto ignore = [](const choice_result&, bool) {};
  while (run.step(poll_interval, ignore)) {
    if (watch.closed()) {
      run.cancel_all();
      res.status = 499; // nobody reads it; the log and metrics do
      return;
    }
  }
  if (run.error())
    return reply_error(res, from_engine(run.error()));
  auto body = completion_response(meta, run.results(), run.usage());
  add_degraded(body, run.degraded());
  res.set_content(dump_json(body), "application/json");
}

/// Streams the answer as server-sent events, one chunk per choice delta,
/// then the usage (when asked for) and [DONE]. A degraded answer's
/// "degraded" rides on the last chunk before [DONE]: the usage chunk, or one
/// without choices (it is known only once every prompt ended). A failure
/// after the stream began goes out as an event with OpenAI's error object.
void answer_stream(std::shared_ptr<completion_run> run, response_meta meta,
                   connection_watch watch, std::shared_ptr<void> busy,
                   bool include_usage, httplib::Response& res) {
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
    "text/event-stream",
    [run, meta, watch, busy, include_usage](size_t, httplib::DataSink& sink) {
      bool ok = true;
      auto write = [&](const std::string& text) {
        ok = ok && sink.write(text.data(), text.size());
      };
      auto emit = [&](const choice_result& delta, bool first) {
        write(sse_event(choice_chunk(meta, delta, first, include_usage)));
      };
      while (ok && run->step(poll_interval, emit))
        ok = !watch.closed();
      if (!ok) {
        run->cancel_all();
        return false;
      }
      const auto& degraded = run->degraded();
      if (run->error()) {
        write(sse_event(to_json(from_engine(run->error()))));
      } else if (include_usage || !degraded.missing_experts.empty()) {
        auto last = include_usage ? usage_chunk(meta, run->usage())
                                  : empty_chunk(meta);
        add_degraded(last, degraded);
        write(sse_event(last));
      }
      write(sse_done);
      if (ok)
        sink.done();
      return ok;
    });
}

} // namespace

void serve_completion(const api_context& ctx, api_kind kind,
                      const httplib::Request& req, httplib::Response& res) {
  auto arrived = completion_run::clock::now();
  nlohmann::json body;
  if (auto err = parse_body(req.body, body))
    return reply_error(res, *err);
  completion_params params;
  if (auto err = parse_completion(body, kind, params))
    return reply_error(res, *err);
  if (!ctx.bridge->ready())
    return reply_error(res, unavailable("not ready: waiting for every expert "
                                        "of the model to have a live host",
                                        "not_ready"));
  engine_requests requests;
  if (auto err = prepare_requests(params, *ctx.model, requests))
    return reply_error(res, *err);
  auto gen = ctx.bridge->start(requests.requests);
  if (!gen)
    return reply_error(res, from_engine(gen.error()));
  auto run = std::make_shared<completion_run>(params, std::move(requests),
                                              ctx.model, std::move(*gen),
                                              ctx.metrics, arrived);
  auto meta = new_response_meta(kind, ctx.model->name);
  connection_watch watch{req.local_addr, req.local_port, req.remote_addr,
                         req.remote_port};
  auto busy = ctx.busy->hold(watch.fd());
  if (params.stream)
    answer_stream(std::move(run), std::move(meta), watch, std::move(busy),
                  params.include_usage, res);
  else
    answer_whole(*run, meta, watch, res);
}

} // namespace volt::http
