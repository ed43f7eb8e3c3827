#pragma once

// The one CAF type-ID block of Volt: every message type, atom and typed actor
// interface. Load it with `cfg.add_message_types<caf::id_block::volt>()` in
// every actor system.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/inspection_messages.hpp"
#include "actors/load_messages.hpp"
#include "actors/messages.hpp"
#include "actors/prefetch_messages.hpp"
#include "actors/stream_messages.hpp"
#include "caf/type_id.hpp"
#include "caf/typed_actor.hpp"
#include "caf/replies_to.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(volt, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(volt, (volt::wire_tensor))
  CAF_ADD_TYPE_ID(volt, (volt::generate_request))
  CAF_ADD_TYPE_ID(volt, (volt::generate_result))
  CAF_ADD_TYPE_ID(volt, (volt::expert_batch))
  CAF_ADD_TYPE_ID(volt, (std::vector<uint32_t>))
  CAF_ADD_TYPE_ID(volt, (std::vector<int32_t>))
  CAF_ADD_TYPE_ID(volt, (volt::generate_chunk))
  CAF_ADD_TYPE_ID(volt, (volt::generate_end))
  CAF_ADD_TYPE_ID(volt, (volt::cancel_request))
  CAF_ADD_TYPE_ID(volt, (volt::engine_load))

  /// Asks the engine to generate tokens for a prompt.
  CAF_ADD_ATOM(volt, volt, generate_atom, "generate")
  /// Asks an expert actor which experts it hosts and from which checkpoint
  /// (its expert_hello).
  CAF_ADD_ATOM(volt, volt, hosted_atom, "hosted")
  /// Asks an actor for a one-line status summary.
  CAF_ADD_ATOM(volt, volt, status_atom, "status")
  /// Tells the engine about an actor that hosts experts.
  CAF_ADD_ATOM(volt, volt, host_atom, "host")
  /// Asks the engine to answer once every expert has a live host.
  CAF_ADD_ATOM(volt, volt, ready_atom, "ready")
  /// Asks the engine to answer once no request is queued or running.
  CAF_ADD_ATOM(volt, volt, drain_atom, "drain")
  /// A timer message an actor sends itself.
  CAF_ADD_ATOM(volt, volt, tick_atom, "tick")
  /// The engine's note to itself to run its next step.
  CAF_ADD_ATOM(volt, volt, step_atom, "step")
  /// Asks a worker's registrar to remove its Redis registration.
  CAF_ADD_ATOM(volt, volt, unregister_atom, "unregister")
  /// Asks the engine to generate tokens and stream them to a sink actor.
  CAF_ADD_ATOM(volt, volt, stream_atom, "stream")
  /// Asks the engine to end a request's sequences early.
  CAF_ADD_ATOM(volt, volt, cancel_atom, "cancel")
  /// Asks a node what it knows of itself and its cluster (node_report).
  CAF_ADD_ATOM(volt, volt, inspect_atom, "inspect")
  /// Asks a router to spawn experts on a worker node and use them.
  CAF_ADD_ATOM(volt, volt, place_atom, "place")
  /// Tells a router's discovery to forget a node and stop what it spawned
  /// there.
  CAF_ADD_ATOM(volt, volt, release_atom, "release")
  /// Asks the engine for its load (engine_load).
  CAF_ADD_ATOM(volt, volt, load_atom, "load")
  /// Asks the engine to stop using an expert host once its rows in flight
  /// are answered.
  CAF_ADD_ATOM(volt, volt, retire_atom, "retire")
  /// Hands the webhook poster an event to POST.
  CAF_ADD_ATOM(volt, volt, post_atom, "post")

  // Typed actor interfaces; declared inside the block because they use its
  // atoms.
  namespace volt {

  /// Hosts experts of every layer; runs their FFN over batches of rows.
  using expert_actor = caf::typed_actor<
    caf::replies_to<expert_batch>::with<wire_tensor>,
    caf::replies_to<hosted_atom>::with<expert_hello>>;

  /// Receives a streamed request's chunks, then its end
  /// (actors/stream_messages.hpp). Clients implement it; it may live in
  /// another process. The engine monitors it: when it goes down, its
  /// requests are cancelled.
  using stream_sink_actor = caf::typed_actor<caf::reacts_to<generate_chunk>,
                                             caf::reacts_to<generate_end>>;

  /// Owns requests and the step loop; answers clients. A streamed submit
  /// answers with the request's id once it is queued (or with the error that
  /// refused it, and then sends the sink nothing). A cancel answers whether
  /// the request still had unfinished sequences to end. For operators
  /// (`volt-node shell`): `inspect_atom` answers a node_report; `place_atom`
  /// spawns experts on a worker node through the router's discovery and
  /// answers the node once they serve; `drain_atom` with a node stops sending
  /// it rows, lets its rows in flight finish, releases it and answers the
  /// experts it hosted. For the autoscaler: `load_atom` answers an
  /// engine_load; a retire answers once the host is out of use (false: it
  /// was not a host), or with an error when it is the last live host of an
  /// expert.
  using engine_actor = caf::typed_actor<
    caf::replies_to<generate_atom, generate_request>::with<generate_result>,
    caf::replies_to<stream_atom, generate_request,
                    stream_sink_actor>::with<uint64_t>,
    caf::replies_to<cancel_atom, cancel_request>::with<bool>,
    caf::replies_to<status_atom>::with<std::string>,
    caf::reacts_to<host_atom, expert_actor, std::vector<uint32_t>, std::string>,
    caf::replies_to<ready_atom>::with<bool>,
    caf::replies_to<drain_atom>::with<bool>, caf::reacts_to<tick_atom>,
    caf::reacts_to<step_atom>,
    caf::replies_to<inspect_atom>::with<node_report>,
    caf::replies_to<place_atom, std::string,
                    std::vector<uint32_t>>::with<std::string>,
    caf::replies_to<drain_atom, std::string>::with<std::vector<uint32_t>>,
    caf::replies_to<load_atom>::with<engine_load>,
    caf::replies_to<retire_atom, expert_actor>::with<bool>>;

  /// Keeps a worker registered in Redis (heartbeats) until told to leave.
  using registrar_actor
    = caf::typed_actor<caf::reacts_to<tick_atom>,
                       caf::replies_to<unregister_atom>::with<bool>>;

  /// Finds expert hosts (static list, placement, Redis) for an engine. On
  /// request it spawns experts on a node (answering the node's name once they
  /// joined the engine), forgets a node (stopping what it spawned there), and
  /// lists its nodes (a node_report with `nodes` only).
  using discovery_actor = caf::typed_actor<
    caf::reacts_to<tick_atom>,
    caf::replies_to<place_atom, std::string,
                    std::vector<uint32_t>>::with<std::string>,
    caf::replies_to<release_atom, std::string>::with<bool>,
    caf::replies_to<inspect_atom>::with<node_report>>;

  /// Keeps the prefetch predictor's scores: one report per engine step; its
  /// status is a one-line summary.
  using prefetch_actor
    = caf::typed_actor<caf::reacts_to<prefetch_report>,
                       caf::replies_to<status_atom>::with<std::string>>;

  /// Watches an engine's load and adds or retires expert replicas
  /// (actors/autoscaler.hpp); its status is a one-line summary.
  using autoscaler_actor
    = caf::typed_actor<caf::reacts_to<tick_atom>,
                       caf::replies_to<status_atom>::with<std::string>>;

  /// POSTs JSON events to a webhook in order, with bounded retries, on a
  /// thread of its own (http/webhook.hpp).
  using webhook_actor = caf::typed_actor<caf::reacts_to<post_atom, std::string>,
                                         caf::reacts_to<tick_atom>>;

  } // namespace volt

  CAF_ADD_TYPE_ID(volt, (volt::registrar_actor))
  CAF_ADD_TYPE_ID(volt, (volt::discovery_actor))
  CAF_ADD_TYPE_ID(volt, (volt::engine_actor))
  CAF_ADD_TYPE_ID(volt, (volt::expert_actor))
  CAF_ADD_TYPE_ID(volt, (volt::stream_sink_actor))
  CAF_ADD_TYPE_ID(volt, (volt::expert_hello))
  CAF_ADD_TYPE_ID(volt, (volt::prefetch_report))
  CAF_ADD_TYPE_ID(volt, (volt::prefetch_actor))
  CAF_ADD_TYPE_ID(volt, (volt::node_report))
  CAF_ADD_TYPE_ID(volt, (volt::autoscaler_actor))
  CAF_ADD_TYPE_ID(volt, (volt::webhook_actor))

CAF_END_TYPE_ID_BLOCK(volt)
