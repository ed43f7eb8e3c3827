#pragma once

#include <sstream>
#include <string>

namespace volt {

/// Severity of a log line; lines below the threshold set by `set_log_level` are
/// dropped.
enum class log_level { debug = 0, info = 1, warning = 2, error = 3, quiet = 4 };

/// Sets the lowest severity that reaches stderr. Default: info.
void set_log_level(log_level level);

/// Returns the current threshold.
log_level current_log_level();

/// Parses "debug" | "info" | "warning" | "error" | "quiet"; returns false on
/// anything else.
bool parse_log_level(const std::string& text, log_level& out);

/// Writes one line "<time> <LEVEL> <component>: <text>" to stderr, atomically
/// with respect to other log lines. CAF's own logger is compiled out of
/// Debian's build, hence our own.
void log_line(log_level level, const char* component, const std::string& text);

} // namespace volt

#define VOLT_LOG_IMPL(level, component, stream_expr)          \
  do {                                                        \
    if (static_cast<int>(level)                               \
        >= static_cast<int>(::volt::current_log_level())) {   \
      std::ostringstream volt_log_os_;                        \
      volt_log_os_ << stream_expr;                            \
      ::volt::log_line(level, component, volt_log_os_.str()); \
    }                                                         \
  } while (false)

#define VOLT_DEBUG(component, x) \
  VOLT_LOG_IMPL(::volt::log_level::debug, component, x)
#define VOLT_INFO(component, x) \
  VOLT_LOG_IMPL(::volt::log_level::info, component, x)
#define VOLT_WARN(component, x) \
  VOLT_LOG_IMPL(::volt::log_level::warning, component, x)
#define VOLT_ERROR(component, x) \
  VOLT_LOG_IMPL(::volt::log_level::error, component, x)
