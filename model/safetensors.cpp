#include "model/safetensors.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "base/error.hpp"
#include "model/file_io.hpp"
#include "model/json.hpp"

namespace volt {

namespace {

/// Headers above this are rejected before parsing, as the reference
/// implementation does.
constexpr uint64_t max_header_size = 100 * 1024 * 1024;

caf::error bad_file(const std::string& path, const std::string& what) {
  return make_volt_error(volt_errc::invalid_checkpoint, path + ": " + what);
}

caf::error bad_tensor(const std::string& path, const std::string& name,
                      const std::string& what) {
  return bad_file(path, "tensor '" + name + "': " + what);
}

std::string offsets_text(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + "]";
}

/// Reads a non-negative JSON integer.
bool read_count(const json::value& x, uint64_t& out) {
  auto n = json::to_int64(x);
  if (!n || *n < 0)
    return false;
  out = static_cast<uint64_t>(*n);
  return true;
}

/// Parsed header entry before it becomes a tensor_info.
struct entry {
  size_t index; // into tensors_
  uint64_t begin;
  uint64_t end;
};

} // namespace

int64_t tensor_info::numel() const {
  int64_t n = 1;
  for (auto d : shape)
    n *= d;
  return n;
}

std::string to_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0)
      out += ", ";
    out += std::to_string(shape[i]);
  }
  out += ']';
  return out;
}

const tensor_info* safetensors_file::find(const std::string& name) const {
  auto i = by_name_.find(name);
  return i == by_name_.end() ? nullptr : &tensors_[i->second];
}

const std::string& safetensors_file::path() const {
  return map_->path();
}

caf::expected<std::shared_ptr<safetensors_file>>
safetensors_file::open(const std::string& path) {
  auto map = mapped_file::open(path);
  if (!map)
    return map.error();
  auto tensors = parse_safetensors((*map)->data(), (*map)->size(), path);
  if (!tensors)
    return tensors.error();
  std::shared_ptr<safetensors_file> result{new safetensors_file};
  result->map_ = std::move(*map);
  result->tensors_ = std::move(*tensors);
  for (size_t i = 0; i < result->tensors_.size(); ++i)
    result->by_name_.emplace(result->tensors_[i].name, i);
  return result;
}

caf::expected<std::vector<tensor_info>>
parse_safetensors(const uint8_t* bytes, size_t size, const std::string& path) {
  if (size < 8)
    return bad_file(path,
                    "file of " + std::to_string(size)
                      + " bytes is too short for the 8-byte header length");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) // little-endian on every host
    header_len = (header_len << 8) | bytes[i];
  if (header_len > max_header_size)
    return bad_file(path, "header length " + std::to_string(header_len)
                            + " exceeds the 100 MiB limit");
  if (header_len > size - 8)
    return bad_file(path, "header length " + std::to_string(header_len)
                            + " exceeds file size " + std::to_string(size));
  std::string_view header_text{reinterpret_cast<const char*>(bytes + 8),
                               header_len};
  auto header = json::parse(header_text, path + ": header");
  if (!header)
    return header.error();
  if (!header->is_object())
    return bad_file(path, std::string{"header is a JSON "}
                            + header->type_name()
                            + ", not an object");
  auto data_area = bytes + 8 + header_len;
  uint64_t data_size = size - 8 - header_len;
  std::vector<tensor_info> tensors;
  std::vector<entry> entries;
  tensors.reserve(header->size());
  entries.reserve(header->size());
  for (auto& [name, spec] : header->items()) {
    if (name == "__metadata__") {
      // Free-form string metadata (e.g. {"format": "pt"}); we only check its
      // shape.
      bool ok = spec.is_object();
      for (auto& m : spec)
        ok = ok && m.is_string();
      if (!ok)
        return bad_file(path, "'__metadata__' must map strings to strings");
      continue;
    }
    if (!spec.is_object())
      return bad_tensor(path, name, "entry is not an object");
    auto dtype_field = json::find(spec, "dtype");
    if (!dtype_field || !dtype_field->is_string())
      return bad_tensor(path, name, "missing or non-string 'dtype'");
    auto& dtype_name = dtype_field->get_ref<const std::string&>();
    tensor_info info;
    info.name = name;
    info.file = path;
    if (!parse_dtype(dtype_name, info.type))
      return bad_tensor(path, name, "unsupported dtype '" + dtype_name + "'");
    auto shape_field = json::find(spec, "shape");
    if (!shape_field || !shape_field->is_array())
      return bad_tensor(path, name, "missing 'shape' array");
    // Multiply in uint64 with overflow checks: a hostile shape must not wrap to
    // a small size.
    uint64_t nbytes = dtype_size(info.type);
    bool overflow = false;
    for (auto& dim : *shape_field) {
      uint64_t d = 0;
      if (!read_count(dim, d))
        return bad_tensor(path, name,
                          "'shape' must hold non-negative integers");
      info.shape.push_back(static_cast<int64_t>(d));
      overflow = overflow || __builtin_mul_overflow(nbytes, d, &nbytes);
    }
    auto offsets_field = json::find(spec, "data_offsets");
    uint64_t begin = 0;
    uint64_t end = 0;
    if (!offsets_field || !offsets_field->is_array()
        || offsets_field->size() != 2 || !read_count((*offsets_field)[0], begin)
        || !read_count((*offsets_field)[1], end))
      return bad_tensor(path, name,
                        "'data_offsets' must be two non-negative integers");
    if (begin > end)
      return bad_tensor(path, name,
                        "data_offsets " + offsets_text(begin, end)
                          + " end before they begin");
    if (end > data_size)
      return bad_tensor(path, name,
                        "data_offsets " + offsets_text(begin, end)
                          + " outside data area of " + std::to_string(data_size)
                          + " bytes");
    if (overflow || end - begin != nbytes)
      return bad_tensor(path, name,
                        "data_offsets " + offsets_text(begin, end) + " hold "
                          + std::to_string(end - begin) + " bytes but shape "
                          + to_string(info.shape) + " of "
                          + to_string(info.type) + " needs "
                          + (overflow ? std::string{"more than 2^64"}
                                      : std::to_string(nbytes)));
    info.data = data_area + begin;
    info.offset = static_cast<size_t>(8 + header_len + begin);
    info.nbytes = static_cast<size_t>(nbytes);
    entries.push_back(entry{tensors.size(), begin, end});
    tensors.push_back(std::move(info));
  }
  // Two tensors sharing bytes would alias silently; empty tensors occupy
  // nothing.
  std::sort(entries.begin(), entries.end(), [](const entry& a, const entry& b) {
    return a.begin < b.begin || (a.begin == b.begin && a.end < b.end);
  });
  const entry* prev = nullptr;
  for (auto& e : entries) {
    if (e.begin == e.end)
      continue;
    if (prev && e.begin < prev->end)
      return bad_file(path, "tensors '" + tensors[prev->index].name + "' "
                              + offsets_text(prev->begin, prev->end) + " and '"
                              + tensors[e.index].name + "' "
                              + offsets_text(e.begin, e.end) + " overlap");
    if (!prev || e.end > prev->end)
      prev = &e;
  }
  return tensors;
}

caf::expected<std::string>
safetensors_header(const std::string& path,
                   const std::vector<tensor_to_write>& tensors) {
  json::value header = {{"__metadata__", {{"format", "pt"}}}};
  std::unordered_set<std::string> names;
  uint64_t offset = 0;
  for (auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__")
      return bad_file(path, "cannot write a tensor named '" + t.name + "'");
    if (!names.insert(t.name).second)
      return bad_tensor(path, t.name, "written twice");
    uint64_t nbytes = dtype_size(t.type);
    for (auto d : t.shape) {
      if (d < 0)
        return bad_tensor(path, t.name,
                          "negative dimension in shape " + to_string(t.shape));
      if (__builtin_mul_overflow(nbytes, static_cast<uint64_t>(d), &nbytes))
        return bad_tensor(path, t.name,
                          "shape " + to_string(t.shape) + " is too large");
    }
    if (nbytes != t.bytes.size())
      return bad_tensor(path, t.name,
                        std::to_string(t.bytes.size()) + " bytes but shape "
                          + to_string(t.shape) + " of " + to_string(t.type)
                          + " needs " + std::to_string(nbytes));
    header[t.name] = {{"dtype", to_string(t.type)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  auto text = json::dump(header);
  // Pad so the data area starts 8-byte aligned: every tensor of an aligned file
  // can then be used in place when its offset is a multiple of its element
  // size.
  while ((8 + text.size()) % 8 != 0)
    text += ' ';
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>(n >> (8 * i));
  return out + text;
}

caf::error write_safetensors(const std::string& path,
                             const std::vector<tensor_to_write>& tensors) {
  auto header = safetensors_header(path, tensors);
  if (!header)
    return header.error();
  std::vector<byte_span> pieces;
  pieces.reserve(tensors.size() + 1);
  pieces.push_back({header->data(), header->size()});
  for (auto& t : tensors)
    pieces.push_back({t.bytes.data(), t.bytes.size()});
  return write_file_atomically(path, pieces);
}

} // namespace volt
