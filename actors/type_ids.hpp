#pragma once

// The one CAF type-ID block of Volt: every message type, atom and typed actor
// interface. Load it with `cfg.add_message_types<caf::id_block::volt>()` in
// every actor system.

#include <cstdint>
#include <string>
#include <vector>

#include "actors/kv_messages.hpp"
#include "actors/messages.hpp"
#include "caf/type_id.hpp"
#include "caf/typed_actor.hpp"
#include "caf/replies_to.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(volt, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(volt, (volt::wire_tensor))
  CAF_ADD_TYPE_ID(volt, (volt::generate_request))
  CAF_ADD_TYPE_ID(volt, (volt::generate_result))
  CAF_ADD_TYPE_ID(volt, (volt::routing_result))
  CAF_ADD_TYPE_ID(volt, (volt::expert_batch))
  CAF_ADD_TYPE_ID(volt, (std::vector<uint32_t>))
  CAF_ADD_TYPE_ID(volt, (std::vector<int32_t>))

  /// Asks the engine to generate tokens for a prompt.
  CAF_ADD_ATOM(volt, volt, generate_atom, "generate")
  /// Asks the gating actor to route a layer's token rows.
  CAF_ADD_ATOM(volt, volt, route_atom, "route")
  /// Asks an expert actor which experts it hosts.
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
  /// Asks a worker's registrar to remove its Redis registration.
  CAF_ADD_ATOM(volt, volt, unregister_atom, "unregister")

  // Typed actor interfaces; declared inside the block because they use its
  // atoms.
  namespace volt {

  /// Holds the routers of every layer; turns hidden rows into top-k experts.
  using gating_actor = caf::typed_actor<
    caf::replies_to<route_atom, uint32_t, wire_tensor>::with<routing_result>>;

  /// Hosts experts of every layer; runs their FFN over batches of rows.
  using expert_actor = caf::typed_actor<
    caf::replies_to<expert_batch>::with<wire_tensor>,
    caf::replies_to<hosted_atom>::with<std::vector<uint32_t>>>;

  /// Owns requests and the layer loop; answers clients.
  using engine_actor = caf::typed_actor<
    caf::replies_to<generate_atom, generate_request>::with<generate_result>,
    caf::replies_to<status_atom>::with<std::string>,
    caf::reacts_to<host_atom, expert_actor, std::vector<uint32_t>, std::string>,
    caf::replies_to<ready_atom>::with<bool>,
    caf::replies_to<drain_atom>::with<bool>, caf::reacts_to<tick_atom>>;

  /// Keeps a worker registered in Redis (heartbeats) until told to leave.
  using registrar_actor
    = caf::typed_actor<caf::reacts_to<tick_atom>,
                       caf::replies_to<unregister_atom>::with<bool>>;

  /// Finds expert hosts (static list, placement, Redis) for an engine.
  using discovery_actor = caf::typed_actor<caf::reacts_to<tick_atom>>;

  } // namespace volt

  CAF_ADD_TYPE_ID(volt, (volt::registrar_actor))
  CAF_ADD_TYPE_ID(volt, (volt::discovery_actor))
  CAF_ADD_TYPE_ID(volt, (volt::engine_actor))
  CAF_ADD_TYPE_ID(volt, (volt::gating_actor))
  CAF_ADD_TYPE_ID(volt, (volt::expert_actor))

  // -- KV page manager

  CAF_ADD_TYPE_ID(volt, (volt::kv_admit))
  CAF_ADD_TYPE_ID(volt, (volt::kv_admission))
  CAF_ADD_TYPE_ID(volt, (volt::kv_write))
  CAF_ADD_TYPE_ID(volt, (volt::kv_write_plan))
  CAF_ADD_TYPE_ID(volt, (volt::kv_commit))
  CAF_ADD_TYPE_ID(volt, (volt::kv_step))
  CAF_ADD_TYPE_ID(volt, (volt::kv_step_plan))
  CAF_ADD_TYPE_ID(volt, (volt::kv_sync))
  CAF_ADD_TYPE_ID(volt, (volt::page_table_stats))
  CAF_ADD_TYPE_ID(volt, (std::vector<uint64_t>))

  /// Asks the KV page manager to fork a sequence (parent, child).
  CAF_ADD_ATOM(volt, volt, kv_fork_atom, "kv_fork")
  /// Asks the KV page manager to release a sequence's pages.
  CAF_ADD_ATOM(volt, volt, kv_release_atom, "kv_release")
  /// Asks the KV page manager for a sequence's block table.
  CAF_ADD_ATOM(volt, volt, kv_table_atom, "kv_table")
  /// Asks the KV page manager for its sequences, oldest admission first.
  CAF_ADD_ATOM(volt, volt, kv_order_atom, "kv_order")
  /// Asks the KV page manager for its counters.
  CAF_ADD_ATOM(volt, volt, kv_stats_atom, "kv_stats")

  namespace volt {

  /// Owns the KV page pool of a node: page tables, copy-on-write, prefix
  /// cache, eviction. Every reply is the answer or an error (invalid_request,
  /// out_of_pages), never a crash. Replies: kv_commit gives the sequence's
  /// computed tokens; kv_sync the pages released; kv_fork the child's block
  /// table; kv_release the number of pages the sequence held; kv_order the
  /// live sequences, oldest admission first.
  using kv_page_manager_actor = caf::typed_actor<
    caf::replies_to<kv_admit>::with<kv_admission>,
    caf::replies_to<kv_write>::with<kv_write_plan>,
    caf::replies_to<kv_commit>::with<int64_t>,
    caf::replies_to<kv_step>::with<kv_step_plan>,
    caf::replies_to<kv_sync>::with<int64_t>,
    caf::replies_to<kv_fork_atom, uint64_t,
                    uint64_t>::with<std::vector<int32_t>>,
    caf::replies_to<kv_release_atom, uint64_t>::with<int64_t>,
    caf::replies_to<kv_table_atom, uint64_t>::with<std::vector<int32_t>>,
    caf::replies_to<kv_order_atom>::with<std::vector<uint64_t>>,
    caf::replies_to<kv_stats_atom>::with<page_table_stats>>;

  } // namespace volt

  CAF_ADD_TYPE_ID(volt, (volt::kv_page_manager_actor))

CAF_END_TYPE_ID_BLOCK(volt)
