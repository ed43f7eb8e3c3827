#include "apps/metrics_scrape.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "apps/tcp_client.hpp"
#include "base/error.hpp"

namespace volt {

caf::expected<std::string> scrape_metrics(const endpoint& where) {
  auto name = "/metrics at " + render_endpoint(where.host, where.port);
  auto fail = [&](const std::string& why) {
    return make_volt_error(volt_errc::internal, name + ": " + why);
  };
  int fd = open_socket(where);
  if (fd < 0)
    return fail("cannot connect");
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: " + where.host
                              + "\r\n\r\n";
  (void)!send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  // The node answers once and closes; a silent one is given up after 10 s.
  std::string response;
  char buf[65536];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 10000) <= 0) {
      close(fd);
      return fail("no answer within 10 s");
    }
    auto n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  auto head_end = response.find("\r\n\r\n");
  auto status = response.substr(0, response.find("\r\n"));
  if (head_end == std::string::npos || status.find(" 200 ") == std::string::npos)
    return fail("answered '" + status.substr(0, 60) + "' instead of 200");
  return response.substr(head_end + 4);
}

double metric_sum(const std::string& text, const std::string& name,
                  const std::string& label) {
  double sum = 0;
  std::istringstream lines{text};
  std::string line;
  while (std::getline(lines, line)) {
    if (line.compare(0, name.size(), name) != 0 || line.size() <= name.size())
      continue;
    auto next = line[name.size()];
    if (next != '{' && next != ' ')
      continue; // another metric whose name starts with this one
    auto labels_end = next == '{' ? line.find("} ") : name.size();
    if (labels_end == std::string::npos)
      continue;
    if (!label.empty()
        && line.substr(0, labels_end).find(label) == std::string::npos)
      continue;
    sum += std::strtod(line.c_str() + labels_end + (next == '{' ? 2 : 1),
                       nullptr);
  }
  return sum;
}

} // namespace volt
