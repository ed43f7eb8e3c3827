#include "apps/stream_output.hpp"

#include <cstdio>

namespace volt {

namespace {

std::string logprob_text(float x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.4f", static_cast<double>(x));
  return buf;
}

} // namespace

std::string chunk_to_text(const generate_chunk& c) {
  std::string out;
  auto prefix = "sequence " + std::to_string(c.sequence);
  for (size_t i = 0; i < c.tokens.size(); ++i) {
    out += prefix + ": " + std::to_string(c.tokens[i]);
    if (i < c.logprobs.size()) {
      const auto& lp = c.logprobs[i];
      out += " logprob " + logprob_text(lp.logprob);
      for (size_t j = 0; j < lp.top.size(); ++j)
        out += (j == 0 ? " top " : ", ") + std::to_string(lp.top[j].token)
               + " " + logprob_text(lp.top[j].logprob);
    }
    out += '\n';
  }
  if (!c.finish_reason.empty())
    out += prefix + " finished: " + c.finish_reason + '\n';
  return out;
}

} // namespace volt
