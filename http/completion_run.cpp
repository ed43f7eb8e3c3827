#include "http/completion_run.hpp"

#include <algorithm>

#include "http/logprobs_json.hpp"

namespace volt::http {

namespace {

double seconds_since(completion_run::clock::time_point t,
                     completion_run::clock::time_point now) {
  return std::chrono::duration<double>(now - t).count();
}

} // namespace

completion_run::completion_run(const completion_params& params,
                               engine_requests requests,
                               std::shared_ptr<const served_model> model,
                               std::unique_ptr<generation> gen,
                               std::shared_ptr<node_metrics> metrics,
                               clock::time_point arrived)
  : params_(params), requests_(std::move(requests)), model_(std::move(model)),
    gen_(std::move(gen)), metrics_(std::move(metrics)), arrived_(arrived) {
  choices_.reserve(requests_.requests.size() * params_.n);
  for (const auto& req : requests_.requests) {
    // A completion continues its prompt's text; a chat reply is a message
    // of its own.
    std::optional<int32_t> context;
    if (params_.kind == api_kind::completion)
      context = req.prompt.back();
    for (uint32_t s = 0; s < params_.n; ++s)
      choices_.push_back(
        choice_state{choice_output{model_->tok, params_.stop, context},
                     {}, false, false, {}, {}, 0});
  }
}

choice_result completion_run::delta(size_t index, std::string text,
                                    size_t first, size_t last) const {
  const auto& c = choices_[index];
  choice_result d;
  d.index = index;
  d.text = std::move(text);
  d.finish_reason = c.finish_reason;
  const auto& tokens = c.out.tokens();
  if (!model_->tok) {
    d.with_token_ids = true;
    d.token_ids.assign(tokens.begin() + first, tokens.begin() + last);
  }
  if (!params_.logprobs)
    return d;
  last = std::min(last, c.logprobs.size());
  first = std::min(first, last);
  std::vector<token_logprob> part(c.logprobs.begin() + first,
                                  c.logprobs.begin() + last);
  if (params_.kind == api_kind::chat) {
    d.logprobs = chat_logprobs(model_->tok.get(), part, *params_.logprobs);
    return d;
  }
  std::vector<size_t> offsets;
  for (auto i = first; i < last; ++i)
    offsets.push_back(c.out.token_offset(i));
  d.logprobs = completion_logprobs(model_->tok.get(), part, offsets,
                                   *params_.logprobs);
  return d;
}

void completion_run::on_tokens(sequence_event& event, const emit_fn& emit) {
  auto& ev = event.chunk;
  auto index = event.prompt * params_.n + ev.sequence;
  if (index >= choices_.size())
    return;
  auto& c = choices_[index];
  if (c.finished)
    return;
  auto now = clock::now();
  if (!ev.tokens.empty()) {
    if (metrics_ && !any_token_)
      metrics_->time_to_first_token(seconds_since(arrived_, now));
    else if (metrics_ && c.started)
      metrics_->inter_token_latency(seconds_since(c.last_token, now)
                                    / static_cast<double>(ev.tokens.size()));
    any_token_ = true;
    c.last_token = now;
  }
  std::string text;
  for (size_t i = 0; i < ev.tokens.size() && !c.out.stopped(); ++i) {
    text += c.out.push(ev.tokens[i]);
    if (i < ev.logprobs.size())
      c.logprobs.push_back(std::move(ev.logprobs[i]));
  }
  if (c.out.stopped()) {
    c.finish_reason = "stop";
    // The engine may already be a step further; what it makes after the
    // stop string is dropped.
    gen_->cancel(event.prompt, static_cast<int32_t>(ev.sequence), "stop");
  } else if (!ev.openai_finish_reason.empty()) {
    text += c.out.finish();
    c.finish_reason = ev.openai_finish_reason;
  }
  c.finished = !c.finish_reason.empty();
  auto released = c.out.released_tokens();
  if (text.empty() && !c.finished && c.started && released == c.sent)
    return;
  if (!c.started && params_.echo)
    text = requests_.prompt_texts[event.prompt] + text;
  emit(delta(index, std::move(text), c.sent, released), !c.started);
  c.sent = released;
  c.started = true;
}

bool completion_run::step(std::chrono::milliseconds wait, const emit_fn& emit) {
  if (gen_->unfinished() == 0)
    return false;
  auto event = gen_->next(wait);
  if (!event)
    return true;
  if (auto* ev = std::get_if<sequence_event>(&*event)) {
    on_tokens(*ev, emit);
  } else {
    auto& end = std::get<prompt_end>(*event);
    if (end.error && !error_)
      error_ = end.error;
    degraded_.add(end.degraded_experts, end.degraded_tokens);
  }
  return gen_->unfinished() > 0;
}

void completion_run::cancel_all() {
  for (size_t p = 0; p < requests_.requests.size(); ++p)
    gen_->cancel(p, -1, "cancelled");
}

std::vector<choice_result> completion_run::results() const {
  std::vector<choice_result> out;
  for (size_t i = 0; i < choices_.size(); ++i) {
    const auto& c = choices_[i];
    auto text = c.out.text();
    if (params_.echo)
      text = requests_.prompt_texts[i / params_.n] + text;
    out.push_back(delta(i, std::move(text), 0, c.out.released_tokens()));
  }
  return out;
}

usage_counts completion_run::usage() const {
  usage_counts u;
  for (const auto& req : requests_.requests)
    u.prompt_tokens += static_cast<int64_t>(req.prompt.size());
  for (const auto& c : choices_)
    u.completion_tokens += static_cast<int64_t>(c.out.tokens().size());
  return u;
}

} // namespace volt::http
