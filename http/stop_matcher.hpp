#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace volt::http {

/// Finds the first stop string in text that arrives in pieces (one streamed
/// token at a time), so that a stop string split across tokens is found too.
/// It holds back the end of the text that could still grow into a stop
/// string and releases text only once no stop string can begin in it. The
/// stop string itself is never released (OpenAI leaves it out).
class stop_matcher {
public:
  /// Matches `stops` (non-empty strings); with none, every push releases
  /// its piece at once.
  explicit stop_matcher(std::vector<std::string> stops = {});

  /// Adds `piece`; returns the text that became final. Once a stop string
  /// matched, the returned text ends right before it, stopped() is true and
  /// later pushes return "".
  std::string push(std::string_view piece);

  /// Releases what is held back at the end of the text (no stop string can
  /// complete any more).
  std::string finish();

  /// Whether a stop string matched.
  bool stopped() const {
    return stopped_;
  }

  /// Bytes held back now.
  size_t held() const {
    return held_.size();
  }

private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

} // namespace volt::http
