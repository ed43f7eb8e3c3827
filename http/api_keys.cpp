#include "http/api_keys.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>

#include "base/error.hpp"
#include "base/log.hpp"
#include "base/trimmed.hpp"
#include "model/file_io.hpp"

namespace volt::http {

namespace {

constexpr auto recheck_interval = std::chrono::seconds{1};

bool token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0
         || std::string_view{"-._~+/="}.find(c) != std::string_view::npos;
}

caf::error key_file_error(const std::string& what) {
  return make_volt_error(volt_errc::invalid_config,
                         "[http] api_keys_file: " + what);
}

api_error unauthorized(std::string message) {
  return {
    401, std::move(message), "invalid_request_error", {}, "invalid_api_key"};
}

} // namespace

caf::expected<std::vector<digest256>> parse_api_keys(const std::string& text,
                                                     const std::string& path) {
  std::vector<digest256> result;
  size_t line_no = 0;
  size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find('\n', start);
    if (end == std::string::npos)
      end = text.size();
    ++line_no;
    auto line = trimmed(text.substr(start, end - start));
    start = end + 1;
    if (line.empty() || line[0] == '#')
      continue;
    auto where = path + ":" + std::to_string(line_no) + ": ";
    if (line.size() < min_api_key_size || line.size() > max_api_key_size)
      return key_file_error(
        where + "a key has " + std::to_string(line.size())
        + " characters; keys have " + std::to_string(min_api_key_size) + " to "
        + std::to_string(max_api_key_size) + " (e.g. `openssl rand -hex 24`)");
    if (!std::all_of(line.begin(), line.end(), token_char))
      return key_file_error(where
                            + "a key may hold only letters, digits and "
                              "-._~+/= (no spaces; '#' starts a comment only "
                              "at the beginning of a line)");
    result.push_back(sha256_of(line));
  }
  if (result.empty())
    return key_file_error(path
                          + ": holds no key (every request would be "
                            "refused)");
  return result;
}

bool api_keys::file_state::operator==(const file_state& y) const {
  return size == y.size && mtime.tv_sec == y.mtime.tv_sec
         && mtime.tv_nsec == y.mtime.tv_nsec && inode == y.inode;
}

std::optional<api_keys::file_state>
api_keys::stat_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return std::nullopt;
  return file_state{st.st_size, st.st_mtim, st.st_ino};
}

caf::expected<std::shared_ptr<api_keys>> api_keys::load(std::string path) {
  std::shared_ptr<api_keys> result{new api_keys{std::move(path)}};
  auto state = stat_file(result->path_);
  auto text = read_text_file(result->path_);
  if (!text)
    return key_file_error(describe(text.error()));
  auto digests = parse_api_keys(*text, result->path_);
  if (!digests)
    return std::move(digests.error());
  result->digests_ = std::move(*digests);
  if (state)
    result->seen_ = *state;
  result->last_check_ = std::chrono::steady_clock::now();
  return result;
}

void api_keys::refresh() {
  auto now = std::chrono::steady_clock::now();
  if (now - last_check_ < recheck_interval)
    return;
  last_check_ = now;
  auto state = stat_file(path_);
  // A file that is gone, or changes again before it parses, is reported
  // once per state it is in; the keys in use stay.
  auto gone = file_state{};
  if (state ? *state == seen_ : seen_ == gone)
    return;
  seen_ = state ? *state : gone;
  if (!state) {
    VOLT_ERROR("http", path_ << " ([http] api_keys_file) is gone; the "
                             << digests_.size()
                             << " keys read before stay in "
                                "use");
    return;
  }
  auto text = read_text_file(path_);
  auto digests = text ? parse_api_keys(*text, path_)
                      : caf::expected<std::vector<digest256>>{text.error()};
  if (!digests) {
    VOLT_ERROR("http", describe(digests.error())
                         << "; the " << digests_.size()
                         << " keys read before stay in use");
    return;
  }
  digests_ = std::move(*digests);
  VOLT_INFO("http", "read " << digests_.size() << " API keys from " << path_
                            << " again");
}

bool api_keys::accepts(const std::string& key) {
  auto digest = sha256_of(key);
  std::lock_guard<std::mutex> guard{mtx_};
  refresh();
  bool found = false;
  for (const auto& d : digests_)
    found = constant_time_equal(d, digest) || found;
  return found;
}

size_t api_keys::size() {
  std::lock_guard<std::mutex> guard{mtx_};
  refresh();
  return digests_.size();
}

std::optional<api_error> authorize(api_keys& keys,
                                   const std::string& authorization) {
  if (authorization.empty())
    return unauthorized("You didn't provide an API key. Send it in an "
                        "Authorization header using Bearer auth "
                        "(Authorization: Bearer YOUR_KEY)");
  static constexpr std::string_view scheme = "bearer ";
  // The scheme is case-insensitive (RFC 7235).
  bool bearer
    = authorization.size() > scheme.size()
      && std::equal(scheme.begin(), scheme.end(), authorization.begin(),
                    [](char x, char y) {
                      return x == std::tolower(static_cast<unsigned char>(y));
                    });
  if (!bearer)
    return unauthorized("The Authorization header must be 'Bearer "
                        "YOUR_KEY'");
  if (!keys.accepts(trimmed(authorization.substr(scheme.size()))))
    return unauthorized("Incorrect API key provided");
  return std::nullopt;
}

} // namespace volt::http
