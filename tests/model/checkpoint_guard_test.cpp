#define CAF_SUITE model.checkpoint_guard

// Hostile or damaged checkpoints: a layer count far beyond the files, and NaN
// and infinite weights in every float type.

#include <chrono>
#include <cmath>

#include "base/error.hpp"
#include "model/checkpoint.hpp"
#include "model/finite.hpp"
#include "model/mixtral.hpp"
#include "tests/model/checkpoint_writer.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

const std::string q0 = "model.layers.0.self_attn.q_proj.weight";

struct fixture : test::fixture_copies {
  /// The fixture's tensors as `type`, with element `at` of tensor `name`
  /// set to `value`.
  std::vector<tensor_to_write> poisoned(dtype type, const std::string& name,
                                        size_t at, float value) {
    auto ts = test::convert_tensors(tensors, type);
    for (auto& t : ts) {
      if (t.name != name)
        continue;
      auto xs = test::to_floats(t.type, t.bytes.data(),
                                t.bytes.size() / dtype_size(t.type));
      xs[at] = value;
      t.bytes = test::float_bytes(xs, t.type);
    }
    return ts;
  }
};

} // namespace

CAF_TEST(first_non_finite finds nan and infinities in every float type) {
  std::vector<float> xs(1000, 1.5f);
  CAF_CHECK_EQUAL(first_non_finite(xs.data(), xs.size()), -1);
  xs[777] = NAN;
  xs[900] = INFINITY;
  CAF_CHECK_EQUAL(first_non_finite(xs.data(), xs.size()), 777);
  xs[3] = -INFINITY;
  CAF_CHECK_EQUAL(first_non_finite(xs.data(), xs.size()), 3);
  CAF_CHECK_EQUAL(non_finite_name(xs[3]), "-inf");
  CAF_CHECK_EQUAL(non_finite_name(xs[777]), "NaN");
  // Large finite values pass (65504 is f16's largest).
  for (auto type : {dtype::f32, dtype::bf16, dtype::f16}) {
    auto bytes = test::float_bytes(type == dtype::f16
                                     ? std::vector<float>{65504.0f, -1.0f}
                                     : std::vector<float>{3.0e38f, -3.0e38f},
                                   type);
    CAF_CHECK_EQUAL(first_non_finite(type, bytes.data(),
                                     bytes.size() / dtype_size(type)),
                    -1);
    auto bad = test::float_bytes({1.0f, 2.0f, NAN, INFINITY}, type);
    CAF_CHECK_EQUAL(first_non_finite(type, bad.data(), 4), 2);
    auto inf = test::float_bytes({1.0f, -INFINITY}, type);
    CAF_CHECK_EQUAL(first_non_finite(type, inf.data(), 2), 1);
  }
  uint8_t ints[4] = {0xff, 0xff, 0xff, 0x7f};
  CAF_CHECK_EQUAL(first_non_finite(dtype::i32, ints, 1), -1);
}

CAF_TEST_FIXTURE_SCOPE(checkpoint_guard_tests, fixture)

CAF_TEST(a layer count beyond the files fails fast naming the key) {
  // 10^9 layers: names or buffers built per layer before the check would
  // take minutes and tens of GB.
  auto pos = config_text.find("\"num_hidden_layers\": 2");
  CAF_REQUIRE(pos != std::string::npos);
  config_text.replace(pos, 22, "\"num_hidden_layers\": 1000000000");
  auto dir = write("layers", tensors);
  auto started = std::chrono::steady_clock::now();
  auto ckpt = checkpoint::open(dir);
  auto took = std::chrono::steady_clock::now() - started;
  CAF_REQUIRE(!ckpt);
  CAF_CHECK(ckpt.error() == volt_errc::invalid_checkpoint);
  CAF_CHECK_EQUAL(describe(ckpt.error()),
                  dir
                    + "/config.json: num_hidden_layers is 1000000000 but the "
                      "safetensors files hold tensors of 2 layers (none of "
                      "layer 2, e.g. 'model.layers.2.input_layernorm.weight')");
  CAF_CHECK_LESS(took, std::chrono::seconds{5});
}

CAF_TEST(non finite weights are refused naming the file and tensor) {
  struct poison {
    dtype type;
    float value;
    const char* shown;
  };
  for (auto p : {poison{dtype::f32, NAN, "NaN"}, poison{dtype::bf16, INFINITY,
                                                        "+inf"},
                 poison{dtype::f16, -INFINITY, "-inf"}}) {
    auto dir = write("poison-" + to_string(p.type),
                     poisoned(p.type, q0, 37, p.value));
    auto ckpt = checkpoint::open(dir);
    CAF_REQUIRE(ckpt);
    auto dense = dense_weights::load(*ckpt);
    CAF_REQUIRE(!dense);
    CAF_CHECK(dense.error() == volt_errc::invalid_checkpoint);
    CAF_CHECK_EQUAL(describe(dense.error()),
                    dir + "/model.safetensors: tensor '" + q0 + "' holds "
                      + p.shown
                      + " at element 37 of [64, 64]; weights must be finite "
                        "(was the checkpoint saved after a diverged step?)");
  }
  // Expert weights too: a worker loads only those.
  auto w2 = expert_weight_name(1, 5, "w2");
  auto dir = write("expert", poisoned(dtype::f32, w2, 8191, NAN));
  auto ckpt = checkpoint::open(dir);
  CAF_REQUIRE(ckpt);
  auto experts = expert_weights::load(*ckpt, {5});
  CAF_REQUIRE(!experts);
  CAF_CHECK_NOT_EQUAL(describe(experts.error()).find("'" + w2 + "' holds NaN"
                                                     " at element 8191"),
                      std::string::npos);
  CAF_CHECK(expert_weights::load(*ckpt, {4}));
}

CAF_TEST_FIXTURE_SCOPE_END()
