#pragma once

#include "caf/scheduled_actor.hpp"
// Typed actor pointers convert to scheduled_actor* only where the type is
// complete.
#include "caf/typed_event_based_actor.hpp"

namespace volt {

/// Replaces CAF's default handler for messages that match no handler of
/// `self`. CAF's own (print_and_drop) writes a line to stderr for every one,
/// so a peer that sends junk to a published actor floods the log; this one
/// logs at most 5 lines a second for the whole process, saying how many it
/// held back, and answers a request with sec::unexpected_message.
void drop_unexpected_messages(caf::scheduled_actor* self);

} // namespace volt
