#include "http/stop_matcher.hpp"

#include <algorithm>

namespace volt::http {

namespace {

/// Length of the longest end of `text` that is a proper beginning of `stop`.
size_t partial_match(const std::string& text, const std::string& stop) {
  auto longest = std::min(text.size(), stop.size() - 1);
  for (auto len = longest; len > 0; --len)
    if (text.compare(text.size() - len, len, stop, 0, len) == 0)
      return len;
  return 0;
}

} // namespace

stop_matcher::stop_matcher(std::vector<std::string> stops)
  : stops_(std::move(stops)) {
  stops_.erase(std::remove(stops_.begin(), stops_.end(), std::string{}),
               stops_.end());
}

std::string stop_matcher::push(std::string_view piece) {
  if (stopped_)
    return {};
  if (stops_.empty())
    return std::string{piece};
  held_.append(piece);
  // held_ had no whole stop string before, so any match ends in the new
  // piece; the earliest one wins, as in a search of the whole text.
  auto first = std::string::npos;
  for (const auto& stop : stops_)
    first = std::min(first, held_.find(stop));
  if (first != std::string::npos) {
    stopped_ = true;
    auto out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  size_t keep = 0;
  for (const auto& stop : stops_)
    keep = std::max(keep, partial_match(held_, stop));
  auto out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string stop_matcher::finish() {
  auto out = std::move(held_);
  held_.clear();
  return stopped_ ? std::string{} : out;
}

} // namespace volt::http
