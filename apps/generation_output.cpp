#include "apps/generation_output.hpp"

#include <cmath>
#include <cstdio>

namespace volt {

namespace {

void append_float(std::string& out, float x) {
  if (!std::isfinite(x)) {
    out += "null"; // JSON has no NaN or infinity
    return;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.9g", static_cast<double>(x));
  out += buf;
}

template <class T>
void append_array(std::string& out, const T* data, size_t n) {
  out += '[';
  for (size_t i = 0; i < n; ++i) {
    if (i > 0)
      out += ',';
    if constexpr (std::is_same_v<T, float>)
      append_float(out, data[i]);
    else
      out += std::to_string(data[i]);
  }
  out += ']';
}

/// Appends a [rows][cols] array, or [d0][d1][d2] for three dimensions.
template <class T>
void append_nested(std::string& out, const wire_tensor& t) {
  const T* data = reinterpret_cast<const T*>(t.bytes.data());
  auto rows = static_cast<size_t>(t.shape[0]);
  auto inner = static_cast<size_t>(t.numel()) / std::max<size_t>(rows, 1);
  out += '[';
  for (size_t r = 0; r < rows; ++r) {
    if (r > 0)
      out += ',';
    if (t.shape.size() == 3) {
      auto cols = static_cast<size_t>(t.shape[2]);
      out += '[';
      for (size_t j = 0; j < inner / cols; ++j) {
        if (j > 0)
          out += ',';
        append_array(out, data + r * inner + j * cols, cols);
      }
      out += ']';
    } else {
      append_array(out, data + r * inner, inner);
    }
  }
  out += ']';
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
                               const generate_result& res) {
  std::string out = "{\"new_tokens\":";
  append_array(out, res.new_tokens.data(), res.new_tokens.size());
  out += ",\"logits\":";
  append_array(out,
               reinterpret_cast<const float*>(res.last_logits.bytes.data()),
               res.last_logits.bytes.size() / sizeof(float));
  if (!res.sequences.empty()) {
    out += ",\"sequences\":[";
    for (size_t i = 0; i < res.sequences.size(); ++i) {
      if (i > 0)
        out += ',';
      append_array(out, res.sequences[i].data(), res.sequences[i].size());
    }
    out += "],\"finish_reasons\":[";
    for (size_t i = 0; i < res.finish_reasons.size(); ++i)
      out += (i > 0 ? ",\"" : "\"") + res.finish_reasons[i] + '"';
    out += ']';
  }
  if (req.return_all_logits) {
    out += ",\"all_logits\":";
    append_nested<float>(out, res.all_logits);
  }
  if (req.return_routing) {
    out += ",\"router_topk\":";
    append_nested<int32_t>(out, res.routing);
  }
  char tail[512];
  std::snprintf(
    tail, sizeof(tail),
    ",\"finish_reason\":\"%s\",\"prompt_tokens\":%zu,\"prefill_seconds\":%.6f,"
    "\"decode_seconds\":%.6f,\"decode_tokens_per_second\":%.2f,"
    "\"kv\":{\"page_size\":%lld,\"pages_used\":%lld,\"pages_shared\":%lld,"
    "\"copy_on_write\":%lld,\"prefix_hit_tokens\":%lld,\"preemptions\":%lld}}",
    res.finish_reason.c_str(), req.prompt.size(), res.prefill_seconds,
    res.decode_seconds, per_second(decode_steps(res), res.decode_seconds),
    static_cast<long long>(res.kv.page_size),
    static_cast<long long>(res.kv.pages_used),
    static_cast<long long>(res.kv.pages_shared),
    static_cast<long long>(res.kv.copy_on_write),
    static_cast<long long>(res.kv.prefix_hit_tokens),
    static_cast<long long>(res.kv.preemptions));
  return out + tail;
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
  return out + buf;
}

} // namespace volt
