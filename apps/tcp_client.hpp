#pragma once

#include "config/endpoint.hpp"

namespace volt {

/// A blocking TCP connection to host:port with TCP_NODELAY, or -1.
int open_socket(const endpoint& where);

} // namespace volt
