#include "config/cluster_secret.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.hpp"
#include "base/log.hpp"
#include "base/trimmed.hpp"

namespace volt {

namespace {

caf::error secret_error(const node_config& cfg, const std::string& what) {
  auto where = cfg.source.empty() ? std::string{"environment"} : cfg.source;
  return make_volt_error(volt_errc::invalid_config,
                         where + ": [security] " + what);
}

} // namespace

std::string check_cluster_secret(const std::string& secret) {
  if (secret.empty() || secret.size() >= min_cluster_secret_size)
    return {};
  return "the secret has " + std::to_string(secret.size())
         + " characters; at least " + std::to_string(min_cluster_secret_size)
         + " are needed (e.g. the output of `openssl rand -hex 32`)";
}

caf::error load_cluster_secret(node_config& cfg) {
  const auto& file = cfg.security.cluster_secret_file;
  if (file.empty())
    return caf::none;
  if (!cfg.security.cluster_secret.empty())
    return secret_error(cfg, "cluster_secret_file: set either cluster_secret "
                             "or cluster_secret_file, not both");
  errno = 0;
  std::ifstream in{file, std::ios::binary};
  auto open_errno = errno;
  std::error_code ec;
  if (!in.is_open() || std::filesystem::is_directory(file, ec))
    return secret_error(cfg, "cluster_secret_file: " + file + ": cannot open ("
                               + (in.is_open() ? "is a directory"
                                               : std::strerror(open_errno))
                               + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad())
    return secret_error(cfg, "cluster_secret_file: " + file + ": cannot read");
  auto secret = trimmed(text.str());
  if (secret.empty())
    return secret_error(cfg, "cluster_secret_file: " + file + " is empty");
  if (auto problem = check_cluster_secret(secret); !problem.empty())
    return secret_error(cfg, "cluster_secret_file: " + file + ": " + problem);
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077) != 0)
    VOLT_WARN("config", file << " ([security] cluster_secret_file) may be read "
                                "by other users; chmod 600 it");
  cfg.security.cluster_secret = std::move(secret);
  return caf::none;
}

} // namespace volt
