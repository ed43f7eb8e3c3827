#include "actors/unexpected_messages.hpp"

#include "base/log.hpp"
#include "base/log_throttle.hpp"
#include "caf/message_view.hpp"
#include "caf/sec.hpp"

namespace volt {

namespace {

log_throttle& throttle() {
  static log_throttle instance;
  return instance;
}

/// The start of `x` rendered by CAF, on one line of printable characters.
std::string preview(const caf::type_erased_tuple& x) {
  constexpr size_t limit = 80;
  auto text = x.stringify();
  if (text.size() > limit)
    text = text.substr(0, limit - 3) + "...";
  for (auto& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      c = '.';
  return text;
}

caf::result<caf::message> drop(caf::scheduled_actor* self,
                               caf::message_view& x) {
  uint64_t held_back = 0;
  if (throttle().pass(held_back))
    VOLT_WARN("node", self->name()
                        << " dropped a message it does not handle: "
                        << preview(x.content())
                        << (held_back > 0
                              ? " (" + std::to_string(held_back)
                                  + " more such messages not logged)"
                              : std::string{}));
  return caf::sec::unexpected_message;
}

} // namespace

void drop_unexpected_messages(caf::scheduled_actor* self) {
  self->set_default_handler(drop);
}

} // namespace volt
