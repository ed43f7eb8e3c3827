#pragma once

// CAF's binary format as the fuzz targets read it: caf::binary_deserializer,
// except that a sequence longer than the bytes left is refused before
// anything is allocated for it.
//
// Why: CAF 0.17's deserializer sizes a container from its declared length
// before it reads a single element (data_processor::apply_sequence), so a
// few bytes declaring 4 GiB make it allocate 4 GiB, and the read then fails.
// That is CAF's behaviour on every node link too; there, mutual TLS admits
// only the cluster's own nodes (docs/OPERATIONS.md, *Security*). The targets
// look for defects in Volt's code behind the decoder, not for that one.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include "caf/binary_deserializer.hpp"
#include "caf/deserializer.hpp"
#include "caf/sec.hpp"

namespace volt::fuzz {

class bounded_deserializer final : public caf::deserializer {
public:
  bounded_deserializer(const char* data, size_t size)
    : inner_(nullptr, data, size) {
  }

  caf::error begin_object(uint16_t& typenr, std::string& name) override {
    return inner_.begin_object(typenr, name);
  }

  caf::error end_object() override {
    return inner_.end_object();
  }

  caf::error begin_sequence(size_t& n) override {
    if (auto err = inner_.begin_sequence(n))
      return err;
    // Every element takes at least one byte in the encodings of Volt's
    // message types.
    if (n > inner_.remaining())
      return caf::sec::end_of_stream;
    return caf::none;
  }

  caf::error end_sequence() override {
    return inner_.end_sequence();
  }

  caf::error apply_raw(size_t num_bytes, void* data) override {
    return inner_.apply_raw(num_bytes, data);
  }

protected:
  caf::error apply_impl(int8_t& x) override { return inner_(x); }
  caf::error apply_impl(uint8_t& x) override { return inner_(x); }
  caf::error apply_impl(int16_t& x) override { return inner_(x); }
  caf::error apply_impl(uint16_t& x) override { return inner_(x); }
  caf::error apply_impl(int32_t& x) override { return inner_(x); }
  caf::error apply_impl(uint32_t& x) override { return inner_(x); }
  caf::error apply_impl(int64_t& x) override { return inner_(x); }
  caf::error apply_impl(uint64_t& x) override { return inner_(x); }
  caf::error apply_impl(float& x) override { return finite(inner_(x), x); }
  caf::error apply_impl(double& x) override { return finite(inner_(x), x); }
  caf::error apply_impl(long double& x) override {
    return finite(inner_(x), x);
  }
  caf::error apply_impl(std::string& x) override { return inner_(x); }
  caf::error apply_impl(std::u16string& x) override { return inner_(x); }
  caf::error apply_impl(std::u32string& x) override { return inner_(x); }

public:
  /// Whether a floating-point field decoded to an infinity or NaN. CAF 0.17's
  /// serializer never returns for an infinite value (pack754 halves it
  /// forever), so such a message cannot be encoded again; Volt never sends
  /// back a float it received, and its own checks refuse non-finite fields.
  bool saw_non_finite() const {
    return non_finite_;
  }

private:
  template <class T>
  caf::error finite(caf::error err, T x) {
    if (!err && !std::isfinite(x))
      non_finite_ = true;
    return err;
  }

  caf::binary_deserializer inner_;
  bool non_finite_ = false;
};

} // namespace volt::fuzz
