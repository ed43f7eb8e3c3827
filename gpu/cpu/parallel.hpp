#pragma once

// Fork-join parallelism for the CPU ops of one engine step. The CPU executor
// runs a step on the engine's actor thread; attention, the local experts and
// the logits are split over a small pool of our own threads (not CAF's
// scheduler), which the step has to itself.

#include <cstdint>
#include <functional>

namespace volt::cpu {

/// Runs `fn(begin, end)` over contiguous parts of [0, n) and returns when all
/// parts are done: the calling thread takes the first part, pool threads the
/// others. Every part has at least `grain` items, so small `n` runs inline
/// without waking anyone. Callers must make each item's result independent of
/// how [0, n) is split (then results are bit-identical for any thread count).
/// Safe to call from several threads: a call that finds the pool busy runs
/// inline.
void parallel_for(int64_t n, int64_t grain,
                  const std::function<void(int64_t, int64_t)>& fn);

/// Sets the threads parallel_for uses, the caller included (1 disables the
/// pool; 0 means one per core). Call before the first parallel_for.
void set_compute_threads(int n);

/// The threads parallel_for uses, the caller included.
int compute_threads();

/// Sets the rows per part of the engine's parallel ops; 0 picks them by the
/// number of compute threads (rows_per_part).
void set_rows_per_part(int64_t n);

/// Rows per part of the engine's parallel ops ([engine] rows_per_part): a
/// part must be worth waking a thread for. When not set, 8 with 8 or more
/// compute threads, else 32. Measured: on a 16-core host parts of 8 made 32
/// and 64 concurrent requests 12-25 % faster than parts of 32 and left 1 and
/// 8 requests as they were (8 rows stay one part); on the 2-vCPU dev VM parts
/// of 16 made 32-request decode steps 12 % slower (waking the other vCPU
/// costs tens of µs, as much as 16 rows of attention).
int64_t rows_per_part();

} // namespace volt::cpu
