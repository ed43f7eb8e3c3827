#define CAF_SUITE actors.expert

// The expert actor on CAF's deterministic test scheduler: correct answers,
// and an error reply (never a crash) for every malformed message, since these
// bytes may come from another node.

#include <optional>

#include "actors/expert.hpp"
#include "gpu/cpu/cpu_ops.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/deterministic_fixture.hpp"

using namespace volt;
using namespace volt::test;

namespace {

struct fixture : deterministic_fixture {
  fixture() {
    auto opened = checkpoint::open(tiny_mixtral_dir());
    if (!opened)
      CAF_FAIL(describe(opened.error()));
    ckpt = std::move(*opened);
    experts = *expert_weights::load(*ckpt, {1, 4, 6});
    expert_handle = sys.spawn(expert, experts);
  }

  std::vector<float> rows(int64_t n) {
    uint64_t state = 99;
    return random_floats(static_cast<size_t>(n * 64), state, 1.0f);
  }

  std::optional<checkpoint> ckpt;
  std::shared_ptr<const expert_weights> experts;
  expert_actor expert_handle;
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(expert_tests, fixture)

CAF_TEST(the expert actor reports what it hosts) {
  auto hello = ask<expert_hello>(expert_handle, hosted_atom_v);
  CAF_REQUIRE(hello);
  CAF_CHECK_EQUAL(hello->experts, std::vector<uint32_t>({1, 4, 6}));
  CAF_CHECK_EQUAL(hello->checkpoint, experts->hosting().checkpoint_fingerprint());
  CAF_CHECK_EQUAL(hello->checkpoint.size(), 64u);
}

CAF_TEST(the expert actor computes each expert over its rows) {
  auto x = rows(5);
  expert_batch batch{1, {4, 6}, {2, 3}, pack_f32(x.data(), {5, 64}), {}};
  auto out = ask<wire_tensor>(expert_handle, batch);
  CAF_REQUIRE(out);
  CAF_REQUIRE(!check_wire_tensor(*out, dtype::f32, {5, 64}, "out"));
  std::vector<float> got;
  unpack_f32(*out, got);
  std::vector<float> want(5 * 64);
  std::vector<float> scratch(2 * 3 * 128);
  uint32_t ids[] = {4, 6};
  int64_t counts[] = {2, 3};
  int64_t offset = 0;
  for (int i = 0; i < 2; ++i) {
    const auto* w = experts->find(1, ids[i]);
    cpu::swiglu_expert(x.data() + offset * 64, w->w1.data, w->w3.data,
                       w->w2.data, counts[i], 64, 128, scratch.data(),
                       want.data() + offset * 64);
    offset += counts[i];
  }
  CAF_CHECK_EQUAL(got, want);
}

CAF_TEST(malformed expert batches get error replies) {
  auto x = rows(3);
  auto good = pack_f32(x.data(), {3, 64});
  struct bad_case {
    expert_batch batch;
    caf::error code;
    std::string fragment;
  };
  auto wrong_bytes = good;
  wrong_bytes.bytes.pop_back();
  auto wrong_dtype = good;
  wrong_dtype.type = static_cast<uint8_t>(dtype::bf16);
  auto huge = good;
  huge.shape = {int64_t{1} << 40, int64_t{1} << 40};
  std::vector<bad_case> cases = {
    {{9, {1}, {3}, good, {}}, volt_errc::invalid_request, "layer 9"},
    {{0, {1, 4}, {3}, good, {}}, volt_errc::invalid_request, "row counts"},
    {{0, {1}, {2}, good, {}}, volt_errc::invalid_request, "shape"},
    {{0, {1}, {3}, wrong_bytes, {}}, volt_errc::invalid_request, "bytes"},
    {{0, {1}, {3}, wrong_dtype, {}}, volt_errc::invalid_request, "dtype"},
    {{0, {1}, {3}, huge, {}}, volt_errc::invalid_request, "shape"},
    {{0, {2}, {3}, good, {}}, volt_errc::missing_expert, "expert 2"},
    {{0, {4000000000u}, {3}, good, {}},
     volt_errc::missing_expert,
     "expert 4000000000"},
    // The router's prefetch hint names experts of the model, at most all.
    {{0, {1}, {3}, good, {8}},
     volt_errc::invalid_request,
     "expert batch: stage_next: expert 8 is outside the model (8 experts)"},
    {{0, {1}, {3}, good, std::vector<uint32_t>(9, 1)},
     volt_errc::invalid_request,
     "expert batch: stage_next: 9 experts (the model has 8)"},
  };
  for (auto& c : cases) {
    auto out = ask<wire_tensor>(expert_handle, c.batch);
    CAF_REQUIRE(!out);
    CAF_CHECK(out.error() == c.code);
    CAF_CHECK_NOT_EQUAL(describe(out.error()).find(c.fragment),
                        std::string::npos);
  }
  // Still serving after all that; a hint of experts hosted elsewhere is
  // no error (the CPU expert stages nothing).
  CAF_CHECK(ask<wire_tensor>(expert_handle, expert_batch{0, {1}, {3}, good, {}}));
  CAF_CHECK(
    ask<wire_tensor>(expert_handle, expert_batch{0, {1}, {3}, good, {2, 7}}));
}

CAF_TEST_FIXTURE_SCOPE_END
()
