#pragma once

#include <functional>

namespace volt {

/// Installs what `request_stop` does. A node installs a handler that shuts it
/// down gracefully and makes it exit with the code given; one-shot commands
/// install none.
void set_stop_handler(std::function<void(int exit_code)> handler);

/// Asks the process to stop with `exit_code` because it cannot go on safely
/// (the caller has logged why and answered its requests with the error). Only
/// the first call counts; without a handler nothing happens.
void request_stop(int exit_code);

} // namespace volt
