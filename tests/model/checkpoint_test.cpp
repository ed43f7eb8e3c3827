#define CAF_SUITE model.checkpoint

#include "model/checkpoint.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "model/json.hpp"
#include "tests/model/checkpoint_writer.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

const char* q0 = "model.layers.0.self_attn.q_proj.weight";

struct fixture : test::fixture_copies {

  /// Writes the fixture split over two shard files, optionally with an index.
  std::string write_sharded(const std::string& name, bool with_index) {
    auto dir = tmp.subdir(name);
    std::vector<tensor_to_write> first(tensors.begin(), tensors.begin() + 30);
    std::vector<tensor_to_write> second(tensors.begin() + 30, tensors.end());
    auto f1 = std::string{"model-00001-of-00002.safetensors"};
    auto f2 = std::string{"model-00002-of-00002.safetensors"};
    CAF_REQUIRE(!test::write_checkpoint(dir, config_text, first, f1));
    CAF_REQUIRE(!write_safetensors(dir + "/" + f2, second));
    if (with_index) {
      json::value index = {{"metadata", {{"total_size", 1847872}}},
                           {"weight_map", json::value::object()}};
      for (size_t i = 0; i < tensors.size(); ++i)
        index["weight_map"][tensors[i].name] = i < 30 ? f1 : f2;
      test::write_text(dir + "/model.safetensors.index.json",
                       index.dump(2) + "\n");
    }
    return dir;
  }

  /// Expects opening `dir` to fail with exactly `what`.
  void expect_error(const std::string& dir, const std::string& what) {
    auto ckpt = checkpoint::open(dir);
    if (ckpt) {
      CAF_ERROR(dir << ": opened but expected: " << what);
      return;
    }
    CAF_CHECK(ckpt.error() == volt_errc::invalid_checkpoint);
    CAF_CHECK_EQUAL(describe(ckpt.error()), what);
  }

  tensor_to_write& tensor(const std::string& name) {
    for (auto& t : tensors)
      if (t.name == name)
        return t;
    CAF_FAIL("no tensor " << name);
  }

  /// Every tensor of `ckpt` equals the fixture's bytes.
  void check_same_as_fixture(const checkpoint& ckpt) {
    CAF_CHECK_EQUAL(ckpt.tensors().size(), tensors.size());
    for (auto& t : tensors) {
      auto info = ckpt.find(t.name);
      if (!info || info->type != t.type || info->shape != t.shape
          || std::memcmp(info->data, t.bytes.data(), t.bytes.size()) != 0)
        CAF_ERROR("tensor " << t.name << " differs");
    }
  }
};

} // namespace

CAF_TEST(tensor names) {
  CAF_CHECK_EQUAL(expert_weight_name(3, 5, "w1"),
                  "model.layers.3.block_sparse_moe.experts.5.w1.weight");
  CAF_CHECK_EQUAL(layer_tensor_name(0, "input_layernorm.weight"),
                  "model.layers.0.input_layernorm.weight");
  model_config cfg;
  cfg.num_hidden_layers = 2;
  auto dense = dense_tensor_names(cfg);
  CAF_CHECK_EQUAL(dense.size(), 17u);
  CAF_CHECK_EQUAL(dense.front(), "model.embed_tokens.weight");
  CAF_CHECK_EQUAL(dense[1], "model.layers.0.input_layernorm.weight");
  CAF_CHECK_EQUAL(dense[7], "model.layers.0.block_sparse_moe.gate.weight");
  CAF_CHECK_EQUAL(dense[15], "model.norm.weight");
  CAF_CHECK_EQUAL(dense.back(), "lm_head.weight");
  cfg.tie_word_embeddings = true;
  auto tied = dense_tensor_names(cfg);
  CAF_CHECK_EQUAL(tied.size(), 16u);
  CAF_CHECK_EQUAL(tied.back(), "model.norm.weight");
  auto experts = expert_tensor_names(cfg, {6, 1});
  CAF_REQUIRE_EQUAL(experts.size(), 12u);
  CAF_CHECK_EQUAL(experts[0],
                  "model.layers.0.block_sparse_moe.experts.6.w1.weight");
  CAF_CHECK_EQUAL(experts[1],
                  "model.layers.0.block_sparse_moe.experts.6.w2.weight");
  CAF_CHECK_EQUAL(experts[3],
                  "model.layers.0.block_sparse_moe.experts.1.w1.weight");
  CAF_CHECK_EQUAL(experts[11],
                  "model.layers.1.block_sparse_moe.experts.1.w3.weight");
  CAF_CHECK(expert_tensor_names(cfg, {}).empty());
}

CAF_TEST(the fixture opens and has every tensor) {
  auto ckpt = checkpoint::open(test::tiny_mixtral_dir());
  CAF_REQUIRE(ckpt);
  CAF_CHECK_EQUAL(ckpt->dir(), test::tiny_mixtral_dir());
  CAF_CHECK_EQUAL(ckpt->config().num_local_experts, 8);
  CAF_CHECK_EQUAL(ckpt->tensors().size(), 65u);
  CAF_CHECK_EQUAL(describe(ckpt->require(dense_tensor_names(ckpt->config()))),
                  "no error");
  std::vector<uint32_t> all{0, 1, 2, 3, 4, 5, 6, 7};
  CAF_CHECK_EQUAL(
    describe(ckpt->require(expert_tensor_names(ckpt->config(), all))),
    "no error");
  auto q = ckpt->find(q0);
  CAF_REQUIRE(q);
  CAF_CHECK_EQUAL(q->shape, (std::vector<int64_t>{64, 64}));
  CAF_CHECK(ckpt->find("nope") == nullptr);
}

CAF_TEST(require names the first missing tensor and the count) {
  auto ckpt = checkpoint::open(test::tiny_mixtral_dir());
  CAF_REQUIRE(ckpt);
  auto dir = test::tiny_mixtral_dir();
  CAF_CHECK_EQUAL(describe(ckpt->require({"model.norm.weight", "a.weight"})),
                  dir + ": missing tensor 'a.weight'");
  CAF_CHECK_EQUAL(describe(ckpt->require({"a", "model.norm.weight", "b", "c"})),
                  dir + ": missing tensor 'a' and 2 more");
  auto nine = expert_tensor_names(ckpt->config(), {3, 8});
  CAF_CHECK_EQUAL(
    describe(ckpt->require(nine)),
    dir
      + ": missing tensor 'model.layers.0.block_sparse_moe.experts.8.w1.weight'"
        " and 5 more");
  CAF_CHECK(ckpt->require(nine) == volt_errc::invalid_checkpoint);
  CAF_CHECK_EQUAL(describe(ckpt->require({})), "no error");
}

CAF_TEST(load_f32 reads the file bytes without copying) {
  auto path = test::tiny_mixtral_dir() + "/model.safetensors";
  auto raw = test::read_text(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  auto header = json::parse(raw.substr(8, header_len), "header");
  CAF_REQUIRE(header);
  auto name
    = std::string{"model.layers.1.block_sparse_moe.experts.3.w2.weight"};
  auto begin = header->at(name).at("data_offsets").at(0).get<int64_t>();
  auto file_float = [&](size_t i) {
    float x;
    std::memcpy(&x, raw.data() + 8 + header_len + begin + 4 * i, 4);
    return x;
  };
  f32_tensor t;
  {
    auto ckpt = checkpoint::open(test::tiny_mixtral_dir());
    CAF_REQUIRE(ckpt);
    auto loaded = ckpt->load_f32(name);
    CAF_REQUIRE(loaded);
    t = std::move(*loaded);
    CAF_CHECK(reinterpret_cast<const uint8_t*>(t.data)
              == ckpt->find(name)->data);
  }
  // The tensor keeps the mapping alive after the checkpoint is gone.
  CAF_CHECK_EQUAL(t.shape, (std::vector<int64_t>{64, 128}));
  CAF_CHECK_EQUAL(t.numel(), 64 * 128);
  for (size_t i : {size_t{0}, size_t{1}, size_t{777}, size_t{64 * 128 - 1}})
    CAF_CHECK_EQUAL(t.data[i], file_float(i));
  CAF_CHECK(t.data[0] != 0.0f);
  auto ckpt = checkpoint::open(test::tiny_mixtral_dir());
  auto missing = ckpt->load_f32("model.layers.9.input_layernorm.weight");
  CAF_REQUIRE(!missing);
  CAF_CHECK_EQUAL(
    describe(missing.error()),
    test::tiny_mixtral_dir()
      + ": missing tensor 'model.layers.9.input_layernorm.weight'");
}

CAF_TEST_FIXTURE_SCOPE(checkpoint_tests, fixture)

CAF_TEST(a bf16 checkpoint loads as rounded floats) {
  for (auto type : {dtype::bf16, dtype::f16}) {
    auto dir = write(to_string(type), test::convert_tensors(tensors, type));
    auto ckpt = checkpoint::open(dir);
    CAF_REQUIRE(ckpt);
    CAF_CHECK(ckpt->find(q0)->type == type);
    CAF_CHECK_EQUAL(describe(ckpt->require(dense_tensor_names(ckpt->config()))),
                    "no error");
    size_t mismatches = 0;
    for (auto& t : tensors) {
      auto loaded = ckpt->load_f32(t.name);
      CAF_REQUIRE(loaded);
      CAF_CHECK_EQUAL(loaded->shape, t.shape);
      auto orig = test::to_floats(t.type, t.bytes.data(),
                                  static_cast<size_t>(loaded->numel()));
      for (size_t i = 0; i < orig.size(); ++i) {
        auto rounded = type == dtype::bf16 ? bf16_to_f32(f32_to_bf16(orig[i]))
                                           : f16_to_f32(f32_to_f16(orig[i]));
        if (loaded->data[i] != rounded)
          ++mismatches;
      }
    }
    CAF_CHECK_EQUAL(mismatches, 0u);
  }
}

CAF_TEST(unaligned f32 tensors are copied) {
  // A one-byte U8 tensor first leaves every F32 tensor after it misaligned in
  // the file.
  tensors.insert(tensors.begin(), tensor_to_write{"odd", dtype::u8, {1}, {7}});
  auto dir = write("odd", tensors);
  auto ckpt = checkpoint::open(dir);
  CAF_REQUIRE(ckpt);
  auto loaded = ckpt->load_f32(q0);
  CAF_REQUIRE(loaded);
  CAF_CHECK(reinterpret_cast<const uint8_t*>(loaded->data)
            != ckpt->find(q0)->data);
  CAF_CHECK_EQUAL(reinterpret_cast<uintptr_t>(loaded->data) % alignof(float),
                  0u);
  auto orig = test::to_floats(dtype::f32, tensor(q0).bytes.data(), 64 * 64);
  CAF_CHECK(std::memcmp(loaded->data, orig.data(), orig.size() * 4) == 0);
  // Non-float tensors don't load as weights.
  auto odd = ckpt->load_f32("odd");
  CAF_REQUIRE(!odd);
  CAF_CHECK_EQUAL(
    describe(odd.error()),
    dir + "/model.safetensors: tensor 'odd' has dtype U8, not a float type");
}

CAF_TEST(sharded checkpoints load identically) {
  for (bool with_index : {false, true}) {
    auto dir = write_sharded(with_index ? "indexed" : "plain", with_index);
    auto ckpt = checkpoint::open(dir);
    CAF_REQUIRE(ckpt);
    check_same_as_fixture(*ckpt);
    CAF_CHECK_EQUAL(ckpt->find("lm_head.weight")->file,
                    dir + "/model-00001-of-00002.safetensors");
    CAF_CHECK_EQUAL(ckpt->find("model.norm.weight")->file,
                    dir + "/model-00002-of-00002.safetensors");
    auto a = ckpt->load_f32("model.norm.weight");
    CAF_REQUIRE(a);
    CAF_CHECK(
      std::memcmp(a->data, tensor("model.norm.weight").bytes.data(), 64 * 4)
      == 0);
  }
}

CAF_TEST(with an index only the files it names are read) {
  auto dir = write_sharded("stray", true);
  // A stray consolidated file with the same tensors would be a duplicate
  // without the index.
  CAF_REQUIRE(!write_safetensors(dir + "/consolidated.safetensors", tensors));
  auto ckpt = checkpoint::open(dir);
  CAF_REQUIRE(ckpt);
  check_same_as_fixture(*ckpt);
  std::filesystem::remove(dir + "/model.safetensors.index.json");
  expect_error(
    dir,
    dir
      + ": tensor 'lm_head.weight' is in both consolidated.safetensors and "
        "model-00001-of-00002.safetensors");
}

CAF_TEST(index errors) {
  auto dir = write_sharded("index_errors", true);
  auto index = dir + "/model.safetensors.index.json";
  auto original = test::read_text(index);
  auto edit = [&](const std::string& from, const std::string& to) {
    auto text = original;
    auto pos = text.find(from);
    CAF_REQUIRE(pos != std::string::npos);
    test::write_text(index, text.replace(pos, from.size(), to));
  };
  // An index naming a file that doesn't exist.
  edit("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
       "\"model.norm.weight\": \"model-00003-of-00003.safetensors\"");
  expect_error(dir, index
                      + ": weight_map names missing file "
                        "'model-00003-of-00003.safetensors' "
                        "(for tensor 'model.norm.weight')");
  // An index that puts a tensor in the wrong file.
  edit("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
       "\"model.norm.weight\": \"model-00001-of-00002.safetensors\"");
  expect_error(dir, index
                      + ": tensor 'model.norm.weight' is not in "
                        "model-00001-of-00002.safetensors as weight_map says");
  // An index naming a tensor that no file holds.
  edit("\"model.norm.weight\"",
       "\"model.extra.weight\": \"model-00002-of-00002.safetensors\",\n"
       "    \"model.norm.weight\"");
  expect_error(dir, index
                      + ": tensor 'model.extra.weight' is not in "
                        "model-00002-of-00002.safetensors as weight_map says");
  // Paths outside the folder.
  edit("\"model.norm.weight\": \"model-00002-of-00002.safetensors\"",
       "\"model.norm.weight\": \"../model-00002-of-00002.safetensors\"");
  expect_error(
    dir, index
           + ": weight_map entry for tensor 'model.norm.weight' must be a file "
             "name in the folder");
  test::write_text(index, "{\"metadata\": {}}");
  expect_error(dir, index + ": missing 'weight_map' object");
  test::write_text(index, "{\"weight_map\": {}}");
  expect_error(dir, index + ": weight_map is empty");
  test::write_text(index, "{\"weight_map\": ");
  expect_error(
    dir, index
           + ":1:16: syntax error while parsing value - unexpected end of "
             "input; expected '[', '{', or a literal (byte 15)");
}

CAF_TEST(a tensor with the wrong shape) {
  auto& q = tensor(q0);
  q.shape = {64, 32};
  q.bytes.resize(64 * 32 * 4);
  auto dir = write("shape", tensors);
  expect_error(
    dir,
    dir
      + "/model.safetensors: tensor 'model.layers.0.self_attn.q_proj.weight' "
        "has shape [64, 32], expected [64, 64] from config.json");
}

CAF_TEST(shapes of every kind of tensor are checked) {
  struct row {
    const char* name;
    std::vector<int64_t> expected;
  };
  row rows[] = {
    {"model.embed_tokens.weight", {320, 64}},
    {"lm_head.weight", {320, 64}},
    {"model.norm.weight", {64}},
    {"model.layers.1.input_layernorm.weight", {64}},
    {"model.layers.1.post_attention_layernorm.weight", {64}},
    {"model.layers.1.self_attn.k_proj.weight", {32, 64}},
    {"model.layers.1.self_attn.v_proj.weight", {32, 64}},
    {"model.layers.1.self_attn.o_proj.weight", {64, 64}},
    {"model.layers.1.block_sparse_moe.gate.weight", {8, 64}},
    {"model.layers.1.block_sparse_moe.experts.7.w1.weight", {128, 64}},
    {"model.layers.1.block_sparse_moe.experts.7.w2.weight", {64, 128}},
    {"model.layers.1.block_sparse_moe.experts.7.w3.weight", {128, 64}},
  };
  auto cfg = read_model_config(test::tiny_mixtral_dir());
  CAF_REQUIRE(cfg);
  for (auto& r : rows) {
    tensor_info info;
    info.name = r.name;
    info.file = "f";
    info.shape = r.expected;
    CAF_CHECK_EQUAL(describe(check_tensor(*cfg, info)), "no error");
    info.shape.back() += 1;
    auto msg = describe(check_tensor(*cfg, info));
    CAF_CHECK_EQUAL(msg, "f: tensor '" + info.name + "' has shape "
                           + to_string(info.shape) + ", expected "
                           + to_string(r.expected) + " from config.json");
  }
  // Names we don't know pass whatever their shape.
  tensor_info other;
  other.name = "model.layers.0.self_attn.rotary_emb.inv_freq";
  other.shape = {8};
  CAF_CHECK(!check_tensor(*cfg, other));
  other.name = "model.layers.00.input_layernorm.weight";
  CAF_CHECK(!check_tensor(*cfg, other));
}

CAF_TEST(a weight with a non - float dtype) {
  auto& norm = tensor("model.norm.weight");
  norm.type = dtype::i32;
  auto dir = write("dtype", tensors);
  expect_error(
    dir, dir
           + "/model.safetensors: tensor 'model.norm.weight' has dtype I32; "
             "weights must be F32, F16 or BF16");
}

CAF_TEST(layer and expert indices out of range) {
  auto extra = tensors;
  extra.push_back(test::make_tensor("model.layers.2.input_layernorm.weight",
                                    {64}, std::vector<float>(64, 1.0f)));
  auto dir = write("layer", extra);
  expect_error(
    dir,
    dir
      + "/model.safetensors: tensor 'model.layers.2.input_layernorm.weight': "
        "layer 2 out of range (config.json: num_hidden_layers 2)");
  extra = tensors;
  extra.push_back(test::make_tensor(expert_weight_name(1, 8, "w2"), {64, 128},
                                    std::vector<float>(64 * 128)));
  dir = write("expert", extra);
  expect_error(dir,
               dir
                 + "/model.safetensors: tensor "
                   "'model.layers.1.block_sparse_moe.experts.8.w2.weight': "
                   "expert 8 out of range (config.json: num_local_experts 8)");
}

CAF_TEST(a tensor duplicated across files) {
  auto dir = write("dup", tensors);
  CAF_REQUIRE(!write_safetensors(dir + "/extra.safetensors",
                                 {tensor("model.norm.weight")}));
  expect_error(
    dir, dir
           + ": tensor 'model.norm.weight' is in both extra.safetensors and "
             "model.safetensors");
}

CAF_TEST(a missing tensor) {
  auto fewer = tensors;
  fewer.erase(
    std::remove_if(fewer.begin(), fewer.end(),
                   [](const tensor_to_write& t) { return t.name == q0; }),
    fewer.end());
  auto dir = write("missing", fewer);
  auto ckpt = checkpoint::open(dir);
  CAF_REQUIRE(ckpt);
  CAF_CHECK_EQUAL(
    describe(ckpt->require(dense_tensor_names(ckpt->config()))),
    dir + ": missing tensor 'model.layers.0.self_attn.q_proj.weight'");
  auto loaded = ckpt->load_f32(q0);
  CAF_REQUIRE(!loaded);
  CAF_CHECK_EQUAL(
    describe(loaded.error()),
    dir + ": missing tensor 'model.layers.0.self_attn.q_proj.weight'");
}

CAF_TEST(folder errors) {
  expect_error("/nonexistent",
               "/nonexistent: checkpoint folder does not exist");
  auto file = tmp.file("plain");
  test::write_text(file, "x");
  expect_error(file, file + ": checkpoint path is not a folder");
  auto empty = tmp.subdir("empty");
  expect_error(empty, empty + "/config.json: file does not exist");
  test::write_text(empty + "/config.json", config_text);
  expect_error(empty, empty + ": no *.safetensors file");
  test::write_text(empty + "/model.safetensors", "");
  expect_error(empty, empty + "/model.safetensors: file is empty");
}

CAF_TEST(tied embeddings and odd sizes) {
  model_config cfg;
  cfg.vocab_size = 31;
  cfg.hidden_size = 24;
  cfg.intermediate_size = 20;
  cfg.num_hidden_layers = 3;
  cfg.num_attention_heads = 6;
  cfg.num_key_value_heads = 2;
  cfg.head_dim = 6;
  cfg.num_local_experts = 6;
  cfg.num_experts_per_tok = 2;
  cfg.max_position_embeddings = 64;
  cfg.tie_word_embeddings = true;
  auto dir = tmp.subdir("odd");
  CAF_REQUIRE(!test::write_checkpoint(
    dir, test::config_json(cfg),
    test::random_mixtral_tensors(cfg, 7, 0.1f, dtype::bf16)));
  auto ckpt = checkpoint::open(dir);
  CAF_REQUIRE(ckpt);
  CAF_CHECK_EQUAL(ckpt->config().head_dim, 6);
  CAF_CHECK(ckpt->config().tie_word_embeddings);
  CAF_CHECK(ckpt->find("lm_head.weight") == nullptr);
  CAF_CHECK_EQUAL(describe(ckpt->require(dense_tensor_names(ckpt->config()))),
                  "no error");
  CAF_CHECK_EQUAL(
    describe(ckpt->require(expert_tensor_names(ckpt->config(), {0, 5}))),
    "no error");
  auto norm = ckpt->load_f32("model.layers.2.post_attention_layernorm.weight");
  CAF_REQUIRE(norm);
  CAF_CHECK(norm->data[0] > 0.85f && norm->data[0] < 1.15f);
}

CAF_TEST_FIXTURE_SCOPE_END
()
