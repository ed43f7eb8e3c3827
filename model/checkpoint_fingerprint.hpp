#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "model/safetensors.hpp"

namespace volt {

/// Bytes of one sample of a tensor's data.
constexpr size_t fingerprint_block = 4096;

/// Samples per tensor: the first and the last block and the rest evenly
/// spaced between them. A tensor of at most this many blocks is read whole.
constexpr size_t fingerprint_blocks = 16;

/// The identity of a checkpoint, as 64 hex digits: SHA-256 over
/// `config_json` (config.json's bytes) and, for every tensor in name order,
/// its name, dtype, shape, byte count and `fingerprint_blocks` samples of
/// `fingerprint_block` bytes of its data. Nodes compare it to refuse peers
/// that serve another checkpoint; it does not depend on how the tensors are
/// split into files. Any other training run, fine-tune or conversion changes
/// every sample; an edit of a few bytes between samples goes unseen (compare
/// file checksums for that). Reads about 64 KiB per tensor.
std::string fingerprint_checkpoint(std::string_view config_json,
                                   std::vector<const tensor_info*> tensors);

} // namespace volt
