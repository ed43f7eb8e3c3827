#include "apps/generation_output.hpp"

#include <cstdio>

#include "model/json.hpp"

namespace volt {

namespace {

json::value leaf(float x) {
  return json::shortest(x);
}

json::value leaf(int32_t x) {
  return x;
}

/// Nests the `T` elements at `data` by the dimensions `dims[0..rank)`.
template <class T>
json::value nest(const T* data, const int64_t* dims, size_t rank) {
  if (rank == 0)
    return leaf(data[0]);
  size_t inner = 1;
  for (size_t i = 1; i < rank; ++i)
    inner *= static_cast<size_t>(dims[i]);
  auto out = json::value::array();
  for (int64_t i = 0; i < dims[0]; ++i)
    out.push_back(rank == 1 ? leaf(data[i])
                            : nest(data + i * inner, dims + 1, rank - 1));
  return out;
}

/// `t`, of element type `type`, as nested arrays of its shape; an empty array
/// when its shape does not fit its bytes (it came over the network) or it has
/// no elements: a shape like [2^40, 0] fits zero bytes, and nesting it would
/// print 2^40 empty arrays.
template <class T>
json::value nested(const wire_tensor& t, dtype type) {
  std::vector<int64_t> any_shape(t.shape.size(), -1);
  if (check_wire_tensor(t, type, any_shape, "tensor") || t.numel() == 0)
    return json::value::array();
  return nest(reinterpret_cast<const T*>(t.bytes.data()), t.shape.data(),
              t.shape.size());
}

double per_second(size_t n, double seconds) {
  return seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
}

/// The first new token comes out of the prefill step; each later one costs a
/// decode step.
size_t decode_steps(const generate_result& res) {
  return res.new_tokens.empty() ? 0 : res.new_tokens.size() - 1;
}

} // namespace

std::string generation_to_json(const generate_request& req,
                               const generate_result& res,
                               const std::vector<std::string>& texts) {
  auto logits = json::value::array();
  auto n_logits = res.last_logits.bytes.size() / sizeof(float);
  auto logits_data
    = reinterpret_cast<const float*>(res.last_logits.bytes.data());
  for (size_t i = 0; i < n_logits; ++i)
    logits.push_back(json::shortest(logits_data[i]));
  json::value out = {{"new_tokens", res.new_tokens}, {"logits", logits}};
  if (!res.sequences.empty()) {
    out["sequences"] = res.sequences;
    out["finish_reasons"] = res.finish_reasons;
  }
  if (req.return_all_logits)
    out["all_logits"] = nested<float>(res.all_logits, dtype::f32);
  if (req.return_routing)
    out["router_topk"] = nested<int32_t>(res.routing, dtype::i32);
  if (!texts.empty())
    out["text"] = texts[0];
  if (!texts.empty() && !res.sequences.empty())
    out["texts"] = texts;
  out["finish_reason"] = res.finish_reason;
  out["prompt_tokens"] = req.prompt.size();
  out["prefill_seconds"] = json::rounded(res.prefill_seconds, 6);
  out["decode_seconds"] = json::rounded(res.decode_seconds, 6);
  out["decode_tokens_per_second"]
    = json::rounded(per_second(decode_steps(res), res.decode_seconds), 2);
  if (!res.degraded_experts.empty())
    out["degraded"] = {{"missing_experts", res.degraded_experts},
                       {"tokens", res.degraded_tokens}};
  out["kv"] = {{"page_size", res.kv.page_size},
               {"pages_used", res.kv.pages_used},
               {"pages_shared", res.kv.pages_shared},
               {"copy_on_write", res.kv.copy_on_write},
               {"prefix_hit_tokens", res.kv.prefix_hit_tokens},
               {"preemptions", res.kv.preemptions}};
  return json::dump(out);
}

std::string generation_to_text(const generate_request& req,
                               const generate_result& res) {
  std::string out;
  auto append_tokens = [&out](const std::vector<int32_t>& tokens) {
    for (auto t : tokens)
      out += " " + std::to_string(t);
  };
  if (res.sequences.empty()) {
    out = "new tokens:";
    append_tokens(res.new_tokens);
  }
  for (size_t i = 0; i < res.sequences.size(); ++i) {
    out += (i > 0 ? "\nsequence " : "sequence ") + std::to_string(i) + ":";
    append_tokens(res.sequences[i]);
  }
  char buf[256];
  std::snprintf(buf, sizeof(buf),
                "\nprefill: %zu prompt tokens in %.2f ms (%.1f tokens/s)\n"
                "decode: %zu steps in %.2f ms (%.1f tokens/s), stopped by %s\n",
                req.prompt.size(), res.prefill_seconds * 1e3,
                per_second(req.prompt.size(), res.prefill_seconds),
                decode_steps(res), res.decode_seconds * 1e3,
                per_second(decode_steps(res), res.decode_seconds),
                res.finish_reason.c_str());
  out += buf;
  if (!res.degraded_experts.empty()) {
    out += "degraded: experts";
    for (size_t i = 0; i < res.degraded_experts.size(); ++i)
      out += (i > 0 ? ", " : " ") + std::to_string(res.degraded_experts[i]);
    out += " had no live host; " + std::to_string(res.degraded_tokens)
           + " tokens were routed without them\n";
  }
  return out;
}

} // namespace volt
