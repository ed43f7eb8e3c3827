#pragma once

// Message payloads exchanged by Volt's actors. Tensors travel as `wire_tensor`
// (shape + raw bytes) so that the same messages work in one process and across
// nodes.

#include <cstdint>
#include <string>
#include <vector>

#include "caf/meta/type_name.hpp"
#include "net/wire_tensor.hpp"

namespace volt {

/// A client's generation request.
struct generate_request {
  /// Prompt token ids, each in [0, vocab).
  std::vector<int32_t> prompt;
  /// Upper bound on generated tokens; generation also stops at EOS or the
  /// context limit.
  uint32_t max_new_tokens = 16;
  /// Keep generating past the EOS token.
  bool ignore_eos = false;
  /// Also return the logits at every prompt position.
  bool return_all_logits = false;
  /// Also return the top-k experts chosen per layer for every prompt token.
  bool return_routing = false;
  /// Sampling temperature; 0 picks the most likely token (greedy).
  float temperature = 0;
  /// Nucleus sampling: draw from the smallest set of tokens whose probability
  /// reaches top_p (1 keeps all).
  float top_p = 1;
  /// Seed of the request's random numbers: the same seed gives the same
  /// tokens, alone or in a batch, on every machine.
  uint64_t seed = 0;
  /// Sequences sampled from the prompt (parallel sampling): they share the
  /// prompt's KV pages and sequence i draws from random stream i of `seed`.
  uint32_t n = 1;
  /// Log-probabilities of the generated tokens: 0 leaves them out; N in
  /// [1, max_logprobs] returns each token's log-probability and the N most
  /// likely tokens at its position (see token_logprob).
  int32_t logprobs = 0;
  /// Token ids that end a sequence as EOS does (finish reason "stop"), also
  /// with ignore_eos; each in [0, vocab). The stop token is the sequence's
  /// last token.
  std::vector<int32_t> stop_token_ids;
  /// The request's id, by which a cancel_request names it: 0 lets the engine
  /// pick one (a streamed request learns it from the submit's answer). A
  /// client-chosen id must not belong to another request still in the engine
  /// (invalid_request); pick ids unlikely to meet another client's, e.g.
  /// random 64-bit numbers. An id is free again once its request is answered.
  uint64_t id = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, generate_request& x) {
  return f(caf::meta::type_name("volt.generate_request"), x.prompt,
           x.max_new_tokens, x.ignore_eos, x.return_all_logits,
           x.return_routing, x.temperature, x.top_p, x.seed, x.n, x.logprobs,
           x.stop_token_ids, x.id);
}

/// Upper bound of generate_request::logprobs (OpenAI's top_logprobs and
/// vLLM's default max_logprobs).
constexpr int32_t max_logprobs = 20;

/// A token id and its log-probability.
struct top_logprob {
  int32_t token = 0;
  float logprob = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, top_logprob& x) {
  return f(caf::meta::type_name("volt.top_logprob"), x.token, x.logprob);
}

/// A generated token with its log-probability under the model's own
/// distribution at its position: log_softmax of the logits at temperature 1,
/// before top_p, whatever the request's sampling parameters (what vLLM reports
/// by default, and what OpenAI's logprobs mean). A handful of entries per
/// token, so element-wise serialisation costs nothing worth a wire_tensor.
struct token_logprob {
  int32_t token = 0;
  float logprob = 0;
  /// The `logprobs` most likely tokens at this position, most likely first
  /// (ties: lower id first); the sampled token is among them only if it is
  /// that likely (a greedy token always comes first).
  std::vector<top_logprob> top;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, token_logprob& x) {
  return f(caf::meta::type_name("volt.token_logprob"), x.token, x.logprob,
           x.top);
}

/// How a request used the KV cache.
struct kv_usage {
  int64_t page_size = 0;
  /// Pages its sequences held at their end, summed over the sequences.
  int64_t pages_used = 0;
  /// Pages its sequences used without allocating them: prompt pages from the
  /// prefix cache, and pages a forked sequence (n > 1) took over from the
  /// first sequence and never copied.
  int64_t pages_shared = 0;
  /// Pages copied on write for it.
  int64_t copy_on_write = 0;
  /// Prompt tokens whose K/V came from the prefix cache.
  int64_t prefix_hit_tokens = 0;
  /// Times one of its sequences was preempted (pages released under memory
  /// pressure, resumed later by recomputation).
  int64_t preemptions = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, kv_usage& x) {
  return f(caf::meta::type_name("volt.kv_usage"), x.page_size, x.pages_used,
           x.pages_shared, x.copy_on_write, x.prefix_hit_tokens, x.preemptions);
}

/// The answer to a `generate_request`.
struct generate_result {
  /// Tokens of the first sequence.
  std::vector<int32_t> new_tokens;
  /// Every sequence's tokens when the request asked for n > 1 (the first is
  /// `new_tokens`).
  std::vector<std::vector<int32_t>> sequences;
  /// Why each of `sequences` stopped (see `finish_reason`).
  std::vector<std::string> finish_reasons;
  /// Logits at the last prompt position: f32 [vocab].
  wire_tensor last_logits;
  /// Logits at every prompt position when asked: f32 [n_prompt, vocab].
  wire_tensor all_logits;
  /// Experts per layer and prompt token when asked: i32 [n_layers, n_prompt,
  /// k].
  wire_tensor routing;
  /// Why the first sequence stopped: "length" (max_new_tokens), "eos",
  /// "stop" (a stop token id, or a cancel_request for a stop string),
  /// "context" (the model's context is full) or "cancelled".
  std::string finish_reason;
  /// Why each sequence stopped in the words of OpenAI's API (one entry per
  /// sequence, also when n = 1): "stop" for eos and stop, "length" for length
  /// and context, "cancelled" as is (OpenAI has no word for it).
  std::vector<std::string> openai_finish_reasons;
  /// Per sequence (also when n = 1), one entry per generated token, when the
  /// request asked for logprobs; empty otherwise.
  std::vector<std::vector<token_logprob>> logprobs;
  /// Tokens of the prompt, and generated by all sequences together.
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  kv_usage kv;
  /// Degraded routing ([router] on_missing_expert = "renormalize"): the
  /// experts that had no live host while this answer was computed and that
  /// some of its rows would have been routed to, ascending; empty for an
  /// answer computed with every expert it chose.
  std::vector<uint32_t> degraded_experts;
  /// Tokens generated (all sequences) after the answer lost an expert: from
  /// the step whose rows first lost one on, every token depends on it.
  int64_t degraded_tokens = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, generate_result& x) {
  return f(caf::meta::type_name("volt.generate_result"), x.new_tokens,
           x.sequences, x.finish_reasons, x.last_logits, x.all_logits,
           x.routing, x.finish_reason, x.openai_finish_reasons, x.logprobs,
           x.prompt_tokens, x.completion_tokens, x.prefill_seconds,
           x.decode_seconds, x.kv, x.degraded_experts, x.degraded_tokens);
}

/// Token rows of one layer for the experts one actor hosts, grouped by expert:
/// rows [offset_i, offset_i + row_counts[i]) go through expert_ids[i].
struct expert_batch {
  uint32_t layer = 0;
  std::vector<uint32_t> expert_ids;
  std::vector<uint32_t> row_counts;
  wire_tensor rows; // f32 [sum(row_counts), hidden]
  /// The router's prefetch hint: experts of layer + 1 it expects the step
  /// to use, best first, among those this host hosts. A host with a GPU
  /// expert cache copies them in while the router runs the next layer's
  /// attention; others ignore it. Empty without a predictor.
  std::vector<uint32_t> stage_next;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expert_batch& x) {
  return f(caf::meta::type_name("volt.expert_batch"), x.layer, x.expert_ids,
           x.row_counts, x.rows, x.stage_next);
}

/// An expert actor's answer to `hosted_atom`, its hello: what it hosts and
/// which checkpoint the weights come from. A router compares `checkpoint`
/// with its own fingerprint and routes nothing to a host of another one.
struct expert_hello {
  /// Global expert ids, ascending.
  std::vector<uint32_t> experts;
  /// The checkpoint's fingerprint (model/checkpoint_fingerprint.hpp).
  std::string checkpoint;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, expert_hello& x) {
  return f(caf::meta::type_name("volt.expert_hello"), x.experts, x.checkpoint);
}

} // namespace volt
