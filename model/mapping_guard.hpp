#pragma once

#include <cstddef>
#include <string>

#include "caf/error.hpp"

// A running node reads its float32 weights straight from the mapped
// safetensors files. A file truncated under it turns the next read into
// SIGBUS; a file rewritten in place changes the weights under it. Both are
// caught here: every mapping is listed with the size and modification time its
// file had when it was mapped, callers check the list before they compute
// (check_mapped_files), and a SIGBUS inside a listed mapping ends the process
// with a line naming the file instead of a crash. Replacing a file by renaming
// a new one over it is safe: the mapping keeps the old file.

namespace volt {

/// Lists the mapping [begin, begin + size) of `path`, whose open descriptor is
/// `fd` (it must stay open until `unguard_mapping`). Installs the SIGBUS
/// handler on first use.
void guard_mapping(const void* begin, size_t size, int fd,
                   const std::string& path);

/// Drops the mapping that starts at `begin` (before it is unmapped).
void unguard_mapping(const void* begin);

/// Checks that every listed file still has the size and modification time it
/// had when it was mapped; otherwise an invalid_checkpoint error naming the
/// first changed file and what changed.
caf::error check_mapped_files();

/// Exit code of a process whose mapped checkpoint file was truncated under it
/// (the SIGBUS handler's): the checkpoint on disk became bad input.
constexpr int exit_checkpoint_changed = 2;

} // namespace volt
