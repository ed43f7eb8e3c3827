// Fuzzes the safetensors parser (model/safetensors.hpp) with whole file images.
// An accepted file must keep the parser's promises: every tensor inside the
// data area, exactly its shape's bytes, no two sharing bytes, unique names;
// written back by the writer's header code and parsed again it must list the
// same tensors with the same bytes.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fuzz/fuzz_check.hpp"
#include "model/safetensors.hpp"

using namespace volt;

namespace {

const std::string path = "fuzz.safetensors";

void check_layout(const uint8_t* data, size_t size,
                  const std::vector<tensor_info>& tensors) {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i)
    header_len = (header_len << 8) | data[i];
  const uint8_t* area = data + 8 + header_len;
  const uint8_t* end = data + size;
  std::set<std::string> names;
  std::vector<std::pair<const uint8_t*, const uint8_t*>> used;
  for (auto& t : tensors) {
    VOLT_FUZZ_REQUIRE(names.insert(t.name).second,
                      "tensor '" + t.name + "' twice");
    VOLT_FUZZ_REQUIRE(t.name != "__metadata__", "metadata listed as a tensor");
    VOLT_FUZZ_REQUIRE(t.file == path,
                      "tensor '" + t.name + "' names another file");
    VOLT_FUZZ_REQUIRE(t.data >= area && t.data <= end
                        && t.nbytes <= static_cast<size_t>(end - t.data),
                      "tensor '" + t.name + "' lies outside the data area");
    VOLT_FUZZ_REQUIRE(t.offset == static_cast<size_t>(t.data - data),
                      "tensor '" + t.name
                        + "' offset disagrees with its pointer");
    uint64_t bytes = dtype_size(t.type);
    bool overflow = false;
    for (auto d : t.shape) {
      VOLT_FUZZ_REQUIRE(d >= 0,
                        "tensor '" + t.name + "' has a negative dimension");
      overflow = overflow
                 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d),
                                           &bytes);
    }
    // numel() must be defined (no int64 overflow) for what was accepted.
    VOLT_FUZZ_REQUIRE(
      !overflow && bytes == t.nbytes && t.numel() >= 0
        && static_cast<uint64_t>(t.numel()) * dtype_size(t.type) == t.nbytes,
      "tensor '" + t.name + "' byte count disagrees with its shape");
    if (t.nbytes > 0)
      used.emplace_back(t.data, t.data + t.nbytes);
  }
  std::sort(used.begin(), used.end());
  for (size_t i = 1; i < used.size(); ++i)
    VOLT_FUZZ_REQUIRE(used[i].first >= used[i - 1].second,
                      "two tensors share bytes");
}

void check_round_trip(const std::vector<tensor_info>& tensors) {
  std::vector<tensor_to_write> out;
  for (auto& t : tensors) {
    // The writer refuses empty names; the format itself does not.
    if (t.name.empty())
      return;
    out.push_back({t.name, t.type, t.shape,
                   std::vector<uint8_t>(t.data, t.data + t.nbytes)});
  }
  auto header = safetensors_header(path, out);
  VOLT_FUZZ_REQUIRE(static_cast<bool>(header), "writer refused a parsed file: "
                                                 + describe(header.error()));
  std::vector<uint8_t> image(header->begin(), header->end());
  for (auto& t : out)
    image.insert(image.end(), t.bytes.begin(), t.bytes.end());
  auto again = parse_safetensors(image.data(), image.size(), path);
  VOLT_FUZZ_REQUIRE(static_cast<bool>(again),
                    "written file does not parse: " + describe(again.error()));
  VOLT_FUZZ_REQUIRE(again->size() == out.size(),
                    "written file lists other tensors");
  for (size_t i = 0; i < out.size(); ++i) {
    auto& a = (*again)[i];
    auto& b = out[i];
    VOLT_FUZZ_REQUIRE(a.name == b.name && a.type == b.type && a.shape == b.shape
                        && a.nbytes == b.bytes.size()
                        && (a.nbytes == 0
                            || std::memcmp(a.data, b.bytes.data(), a.nbytes)
                                 == 0),
                      "tensor '" + b.name + "' changed on the round trip");
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto tensors = parse_safetensors(data, size, path);
  if (!tensors) {
    volt::fuzz::require_one_line_error(tensors.error(),
                                       volt_errc::invalid_checkpoint, path);
    VOLT_FUZZ_REQUIRE(describe(tensors.error()).rfind(path, 0) == 0,
                      "error does not name the file: "
                        + describe(tensors.error()));
    return 0;
  }
  check_layout(data, size, *tensors);
  check_round_trip(*tensors);
  return 0;
}
