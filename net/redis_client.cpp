#include "net/redis_client.hpp"

#include <hiredis/hiredis.h>

#include "base/error.hpp"

namespace volt {

namespace {

timeval to_timeval(std::chrono::milliseconds t) {
  timeval tv;
  tv.tv_sec = static_cast<time_t>(t.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((t.count() % 1000) * 1000);
  return tv;
}

caf::error redis_error(const std::string& address, const std::string& what) {
  return make_volt_error(volt_errc::internal, "redis " + address + ": " + what);
}

} // namespace

void redis_client::context_deleter::operator()(redisContext* ctx) const {
  redisFree(ctx);
}

caf::expected<redis_client>
redis_client::connect(const redis_target& target,
                      std::chrono::milliseconds timeout) {
  const auto& server = target.server;
  redis_client result;
  result.address_ = render_redis_target(target);
  auto tv = to_timeval(timeout);
  result.ctx_.reset(
    redisConnectWithTimeout(server.host.c_str(), server.port, tv));
  if (!result.ctx_)
    return redis_error(result.address_, "out of memory");
  if (result.ctx_->err)
    return redis_error(result.address_, result.ctx_->errstr);
  redisSetTimeout(result.ctx_.get(), tv);
  if (!target.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!target.user.empty())
      auth.push_back(target.user);
    auth.push_back(target.password);
    // Redis' answer (WRONGPASS, NOAUTH) says what is wrong.
    if (auto r = result.command(auth); !r)
      return std::move(r.error());
  }
  if (target.database != 0)
    if (auto r = result.command({"SELECT", std::to_string(target.database)});
        !r)
      return std::move(r.error());
  return result;
}

redis_client::~redis_client() = default;

caf::expected<std::string>
redis_client::command(const std::vector<std::string>& argv) {
  if (!ctx_)
    return redis_error(address_, "not connected");
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  for (const auto& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* raw = static_cast<redisReply*>(redisCommandArgv(
    ctx_.get(), static_cast<int>(args.size()), args.data(), lengths.data()));
  if (raw == nullptr) {
    auto what = std::string{ctx_->errstr};
    ctx_.reset(); // hiredis contexts are unusable after an I/O error
    return redis_error(address_, what);
  }
  std::unique_ptr<redisReply, void (*)(void*)> reply{raw, freeReplyObject};
  switch (reply->type) {
    case REDIS_REPLY_ERROR:
      return redis_error(address_, std::string{reply->str, reply->len});
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: return std::string{reply->str, reply->len};
    case REDIS_REPLY_INTEGER: return std::to_string(reply->integer);
    default: return std::string{};
  }
}

caf::error redis_client::set(const std::string& key, const std::string& value,
                             std::chrono::milliseconds ttl) {
  auto r = command({"SET", key, value, "PX", std::to_string(ttl.count())});
  return r ? caf::none : std::move(r.error());
}

caf::error redis_client::del(const std::string& key) {
  auto r = command({"DEL", key});
  return r ? caf::none : std::move(r.error());
}

caf::error redis_client::publish(const std::string& channel,
                                 const std::string& message) {
  auto r = command({"PUBLISH", channel, message});
  return r ? caf::none : std::move(r.error());
}

caf::expected<std::vector<std::pair<std::string, std::string>>>
redis_client::entries(const std::string& pattern) {
  if (!ctx_)
    return redis_error(address_, "not connected");
  std::vector<std::string> keys;
  std::string cursor = "0";
  do {
    auto* raw = static_cast<redisReply*>(
      redisCommand(ctx_.get(), "SCAN %s MATCH %s COUNT 1000", cursor.c_str(),
                   pattern.c_str()));
    if (raw == nullptr) {
      auto what = std::string{ctx_->errstr};
      ctx_.reset();
      return redis_error(address_, what);
    }
    std::unique_ptr<redisReply, void (*)(void*)> reply{raw, freeReplyObject};
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
      return redis_error(address_, "unexpected SCAN reply");
    cursor.assign(reply->element[0]->str, reply->element[0]->len);
    auto* batch = reply->element[1];
    for (size_t i = 0; i < batch->elements; ++i)
      keys.emplace_back(batch->element[i]->str, batch->element[i]->len);
  } while (cursor != "0");
  std::vector<std::pair<std::string, std::string>> result;
  for (auto& key : keys) {
    auto value = command({"GET", key});
    if (!value)
      return std::move(value.error());
    if (!value->empty())
      result.emplace_back(std::move(key), std::move(*value));
  }
  return result;
}

} // namespace volt
