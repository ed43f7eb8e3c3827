#pragma once

// What an operator asks of an engine (`volt-node shell`, the autoscaler):
// what it knows, experts placed on a worker node, a node drained. Each runs
// on the engine's thread, only when asked.

#include <string>
#include <vector>

#include "actors/engine.hpp"

namespace volt {

/// The engine's node_report: itself, its expert hosts (with its discovery's
/// targets, asked for on the way), experts, queue, requests, KV pool and
/// metrics text.
caf::result<node_report> inspect_engine(engine_pointer self);

/// Spawns `experts` on the worker node `node` ("host:port") through the
/// engine's discovery (remote spawn of `volt.expert`, as [router] placement
/// does) and answers the node's name once they serve; they are re-spawned
/// when the node comes back, until the node is drained. Errors
/// (invalid_request) name a bad address, an expert outside the model, or a
/// node without discovery (standalone).
caf::result<std::string> place_experts(engine_pointer self, std::string node,
                                       std::vector<uint32_t> experts);

/// Drains `node`: its expert hosts get no new rows (unless nothing else
/// serves an expert), and once their rows in flight are answered they leave
/// the engine and its discovery forgets the node, stopping the actors it
/// spawned there. Answers the experts the node hosted. Refused
/// (invalid_request) for an unknown node, one already draining, or one that
/// is the only live host of some expert.
caf::result<std::vector<uint32_t>> drain_node(engine_pointer self,
                                              const std::string& node);

/// Releases drained hosts whose rows in flight are all answered; the engine
/// calls it when a step ends.
void release_drained(engine_pointer self);

/// Stops picking the host of `handle` and answers once its rows in flight
/// are in and the engine has forgotten it; refuses to retire the last live
/// host of an expert, which would fail the requests that need it.
caf::result<bool> retire_host(engine_pointer self, const expert_actor& handle);

/// Forgets the hosts being retired that have no rows in flight any more,
/// and answers whoever asked to retire them; the engine calls it whenever
/// rows come back or a host goes down.
void finish_retirements(engine_pointer self);

/// Counts the rows of each expert that a step sends out (engine_load's
/// expert_rows).
void count_routed(engine_state& st, const expert_rows& work);

/// Queue depth, running sequences, rows per expert and every expert host,
/// for the autoscaler.
engine_load load_of(const engine_state& st);

} // namespace volt
