#define CAF_SUITE model.safetensors

#include "model/safetensors.hpp"

#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

#include "base/error.hpp"
#include "model/checkpoint.hpp"
#include "model/model_config.hpp"
#include "tests/model/checkpoint_writer.hpp"

#include "tests/test_dsl.hpp"

using namespace volt;

namespace {

/// Writes a safetensors file by hand: `header_len` (default: the header's
/// size), the header text, then `data_size` bytes of data.
std::string raw_file(const test::temp_dir& tmp, const std::string& name,
                     const std::string& header, size_t data_size,
                     int64_t header_len = -1) {
  std::string bytes(8, '\0');
  uint64_t n = header_len < 0 ? header.size()
                              : static_cast<uint64_t>(header_len);
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>(n >> (8 * i));
  bytes += header;
  bytes.append(data_size, '\x01');
  auto path = tmp.file(name);
  test::write_text(path, bytes);
  return path;
}

/// Opens `path` expecting an error that names the file and contains `what`.
void expect_error(const std::string& path, const std::string& what) {
  auto f = safetensors_file::open(path);
  if (f) {
    CAF_ERROR(path << ": opened but expected an error containing: " << what);
    return;
  }
  auto msg = describe(f.error());
  CAF_CHECK(f.error() == volt_errc::invalid_checkpoint);
  CAF_CHECK(msg.find('\n') == std::string::npos);
  if (msg.rfind(path + ": ", 0) != 0 || msg.find(what) == std::string::npos)
    CAF_ERROR("expected '" << path << ": ..." << what << "...', got: " << msg);
}

std::string fixture_file() {
  return test::tiny_mixtral_dir() + "/model.safetensors";
}

} // namespace

CAF_TEST(the fixture opens with 65 tensors shaped per config) {
  auto f = safetensors_file::open(fixture_file());
  CAF_REQUIRE(f);
  auto& file = **f;
  CAF_CHECK_EQUAL(file.path(), fixture_file());
  CAF_CHECK_EQUAL(file.tensors().size(), 65u);
  auto embed = file.find("model.embed_tokens.weight");
  CAF_REQUIRE(embed);
  CAF_CHECK(embed->type == dtype::f32);
  CAF_CHECK_EQUAL(embed->shape, (std::vector<int64_t>{320, 64}));
  CAF_CHECK_EQUAL(embed->nbytes, 320u * 64u * 4u);
  CAF_CHECK_EQUAL(embed->numel(), 320 * 64);
  CAF_CHECK_EQUAL(embed->file, fixture_file());
  auto w2 = file.find("model.layers.1.block_sparse_moe.experts.7.w2.weight");
  CAF_REQUIRE(w2);
  CAF_CHECK_EQUAL(w2->shape, (std::vector<int64_t>{64, 128}));
  CAF_CHECK(file.find("model.layers.2.input_layernorm.weight") == nullptr);
  CAF_CHECK(file.find("__metadata__") == nullptr);
  auto cfg = read_model_config(test::tiny_mixtral_dir());
  CAF_REQUIRE(cfg);
  for (auto& t : file.tensors()) {
    CAF_CHECK_EQUAL(describe(check_tensor(*cfg, t)), "no error");
    CAF_CHECK_EQUAL(t.nbytes, static_cast<size_t>(t.numel()) * 4);
  }
  // Every name a model needs is there: 1 + 7 per layer + 1 + 1 dense, 3 per
  // expert and layer.
  auto dense = dense_tensor_names(*cfg);
  CAF_CHECK_EQUAL(dense.size(), 17u);
  CAF_CHECK_EQUAL(dense.size() + 2 * 8 * 3, file.tensors().size());
  for (auto& name : dense)
    CAF_CHECK(file.find(name) != nullptr);
}

CAF_TEST(write and read back) {
  test::temp_dir tmp;
  std::vector<tensor_to_write> ts;
  ts.push_back(test::make_tensor("f32", {2, 3}, {1, 2, 3, 4, 5, 6}));
  ts.push_back(tensor_to_write{
    "u8", dtype::u8, {3}, {7, 8, 9}}); // leaves odd offsets behind
  ts.push_back(
    test::make_tensor("bf16", {4}, {1.0f, -2.0f, 0.5f, 3.0f}, dtype::bf16));
  ts.push_back(
    tensor_to_write{"i64", dtype::i64, {2}, std::vector<uint8_t>(16, 0xAB)});
  ts.push_back(
    test::make_tensor("f16", {1, 1, 2}, {0.25f, -65504.0f}, dtype::f16));
  ts.push_back(test::make_tensor("scalar", {}, {42.0f}));
  ts.push_back(tensor_to_write{"empty", dtype::i8, {0, 5}, {}});
  ts.push_back(test::make_tensor("name with \"quotes\" and \\", {1}, {9.0f}));
  auto path = tmp.file("x.safetensors");
  CAF_REQUIRE_EQUAL(describe(write_safetensors(path, ts)), "no error");
  // The header length plus its 8 bytes is a multiple of 8, padded with spaces.
  auto raw = test::read_text(path);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  CAF_CHECK_EQUAL((8 + header_len) % 8, 0u);
  CAF_CHECK(raw.find("\"__metadata__\":{\"format\":\"pt\"}")
            != std::string::npos);
  auto f = safetensors_file::open(path);
  CAF_REQUIRE(f);
  auto& read = (*f)->tensors();
  CAF_REQUIRE_EQUAL(read.size(), ts.size());
  for (size_t i = 0; i < ts.size(); ++i) {
    CAF_CHECK_EQUAL(read[i].name, ts[i].name);
    CAF_CHECK(read[i].type == ts[i].type);
    CAF_CHECK_EQUAL(read[i].shape, ts[i].shape);
    CAF_CHECK_EQUAL(read[i].nbytes, ts[i].bytes.size());
    CAF_CHECK(std::vector<uint8_t>(read[i].data, read[i].data + read[i].nbytes)
              == ts[i].bytes);
    CAF_CHECK(ts[i].name == read[i].name && (*f)->find(ts[i].name) == &read[i]);
  }
  CAF_CHECK_EQUAL(read[5].numel(), 1);
  CAF_CHECK_EQUAL(read[6].numel(), 0);
  auto bf = test::to_floats(read[2].type, read[2].data, 4);
  CAF_CHECK_EQUAL(bf, (std::vector<float>{1.0f, -2.0f, 0.5f, 3.0f}));
  // No temporary file is left behind.
  CAF_CHECK(
    !std::filesystem::exists(path + ".tmp." + std::to_string(::getpid())));
}

CAF_TEST(write rejects inconsistent tensors) {
  test::temp_dir tmp;
  auto path = tmp.file("x.safetensors");
  auto check = [&](std::vector<tensor_to_write> ts, const std::string& what) {
    auto err = write_safetensors(path, ts);
    auto msg = describe(err);
    if (!err || msg.rfind(path + ": ", 0) != 0
        || msg.find(what) == std::string::npos)
      CAF_ERROR("expected '" << path << ": ..." << what << "', got: " << msg);
    CAF_CHECK(!std::filesystem::exists(path));
  };
  check({tensor_to_write{"a", dtype::f32, {2}, {1, 2, 3}}},
        "tensor 'a': 3 bytes but shape [2] of F32 needs 8");
  check({test::make_tensor("a", {1}, {1}), test::make_tensor("a", {1}, {1})},
        "tensor 'a': written twice");
  check({test::make_tensor("__metadata__", {1}, {1})},
        "cannot write a tensor named");
  check({tensor_to_write{"n", dtype::f32, {-1}, {}}}, "negative dimension");
  auto dir_err = write_safetensors(tmp.file("no/such/dir.safetensors"), {});
  CAF_CHECK(describe(dir_err).find("no/such/dir.safetensors: cannot create")
            != std::string::npos);
}

CAF_TEST(missing file empty file and directory) {
  test::temp_dir tmp;
  expect_error(tmp.file("absent.safetensors"), "file does not exist");
  test::write_text(tmp.file("empty.safetensors"), "");
  expect_error(tmp.file("empty.safetensors"), "file is empty");
  test::write_text(tmp.file("short.safetensors"), "abc");
  expect_error(tmp.file("short.safetensors"), "file of 3 bytes is too short");
  auto dir = tmp.subdir("dir.safetensors");
  expect_error(dir, "is a directory");
}

CAF_TEST(truncated files) {
  test::temp_dir tmp;
  auto good = tmp.file("good.safetensors");
  CAF_REQUIRE(
    !write_safetensors(good, {test::make_tensor("a", {4}, {1, 2, 3, 4}),
                              test::make_tensor("b", {2}, {5, 6})}));
  auto raw = test::read_text(good);
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  // Cut inside the header.
  auto cut_header = tmp.file("cut_header.safetensors");
  test::write_text(cut_header, raw.substr(0, 8 + header_len / 2));
  expect_error(cut_header, "header length " + std::to_string(header_len)
                             + " exceeds file size "
                             + std::to_string(8 + header_len / 2));
  // Cut inside the data: the last tensor no longer fits.
  auto cut_data = tmp.file("cut_data.safetensors");
  test::write_text(cut_data, raw.substr(0, raw.size() - 4));
  expect_error(
    cut_data,
    "tensor 'b': data_offsets [16, 24] outside data area of 20 bytes");
  // Cut inside the length field.
  auto cut_len = tmp.file("cut_len.safetensors");
  test::write_text(cut_len, raw.substr(0, 7));
  expect_error(cut_len, "too short for the 8-byte header length");
}

CAF_TEST(header length out of bounds) {
  test::temp_dir tmp;
  auto huge = raw_file(tmp, "huge.safetensors", "{}", 0, 200ll << 20);
  expect_error(huge, "header length 209715200 exceeds the 100 MiB limit");
  auto beyond = raw_file(tmp, "beyond.safetensors", "{}", 100, 9999999);
  expect_error(beyond, "header length 9999999 exceeds file size 110");
  auto max = raw_file(tmp, "max.safetensors", "{}", 0, -1);
  CAF_CHECK(safetensors_file::open(
    max)); // an empty header object is a valid empty file
  auto all_ones = tmp.file("ones.safetensors");
  test::write_text(all_ones, std::string(16, '\xFF'));
  expect_error(all_ones,
               "header length 18446744073709551615 exceeds the 100 MiB limit");
}

CAF_TEST(malformed headers) {
  test::temp_dir tmp;
  auto check = [&](const std::string& header, size_t data_size,
                   const std::string& what) {
    expect_error(raw_file(tmp, "f.safetensors", header, data_size), what);
  };
  check("{not json}", 0,
        "header:1:3: syntax error while parsing object key - invalid literal");
  check("", 0, "header:1:1: syntax error while parsing value - unexpected end "
               "of input");
  // Hostile headers: refused by the bounded parse, before any tensor check.
  check("{\"a\": " + std::string(10000, '[') + std::string(10000, ']') + "}",
        0, "header:1:262: nesting deeper than 256 levels (byte 261)");
  check("{\"a\xFF\": {}}", 0, "header:1:4: syntax error while parsing object "
                            "key - invalid string: ill-formed UTF-8 byte");
  check(R"({"a": {"dtype": "F32", "shape": [1e999], "data_offsets": [0, 4]}})",
        4, "header:1:38: number overflow parsing '1e999'");
  check(R"({"a": {"dtype": "F32", "shape": [18446744073709551617],)"
        R"( "data_offsets": [0, 4]}})",
        4, "tensor 'a': 'shape' must hold non-negative integers");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})", 4,
        "header:1:61: syntax error while parsing object - unexpected end of "
        "input; expected '}'");
  check("[1, 2]", 0, "header is a JSON array, not an object");
  check("\"x\"", 0, "header is a JSON string, not an object");
  check(R"({"a": 5})", 0, "tensor 'a': entry is not an object");
  check(R"({"a": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]}})", 8,
        "tensor 'a': unsupported dtype 'F64'");
  check(R"({"a": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}})", 4,
        "tensor 'a': missing or non-string 'dtype'");
  check(R"({"a": {"shape": [1], "data_offsets": [0, 4]}})", 4,
        "tensor 'a': missing or non-string 'dtype'");
  check(R"({"a": {"dtype": "F32", "data_offsets": [0, 4]}})", 4,
        "tensor 'a': missing 'shape' array");
  check(R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", 4,
        "tensor 'a': 'shape' must hold non-negative integers");
  check(R"({"a": {"dtype": "F32", "shape": [1.5], "data_offsets": [0, 4]}})", 4,
        "tensor 'a': 'shape' must hold non-negative integers");
  check(R"({"a": {"dtype": "F32", "shape": [1]}})", 4,
        "tensor 'a': 'data_offsets' must be two non-negative integers");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}})",
        8, "tensor 'a': 'data_offsets' must be two non-negative integers");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, "4"]}})", 4,
        "tensor 'a': 'data_offsets' must be two non-negative integers");
  check(R"({"__metadata__": {"format": 1}})", 0,
        "'__metadata__' must map strings to strings");
  check(R"({"__metadata__": "pt"})", 0,
        "'__metadata__' must map strings to strings");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
             "a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
        8, "header:2:14: duplicate key \"a\"");
  // Tensor errors that the header itself can't show.
  check(
    R"({"model.norm.weight": {"dtype": "F32", "shape": [1], "data_offsets": [10, 20]}})",
    8,
    "tensor 'model.norm.weight': data_offsets [10, 20] outside data area of 8 "
    "bytes");
  check(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}})", 8,
        "tensor 'a': data_offsets [8, 4] end before they begin");
  check(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}})", 16,
        "tensor 'a': data_offsets [0, 8] hold 8 bytes but shape [4] of F32 "
        "needs 16");
  check(R"({"a": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 24]}})",
        24,
        "tensor 'a': data_offsets [0, 24] hold 24 bytes but shape [2, 3] of "
        "BF16 needs 12");
  check(R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296],
                  "data_offsets": [0, 0]}})",
        0, "needs more than 2^64");
}

CAF_TEST(overlapping tensors) {
  test::temp_dir tmp;
  auto check = [&](const std::string& header, size_t data_size,
                   const std::string& what) {
    expect_error(raw_file(tmp, "f.safetensors", header, data_size), what);
  };
  check(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
             "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})",
        24, "tensors 'a' [0, 16] and 'b' [8, 24] overlap");
  // Listed in reverse order, and one inside another.
  check(R"({"b": {"dtype": "U8", "shape": [2], "data_offsets": [4, 6]},
             "a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}})",
        16, "tensors 'a' [0, 16] and 'b' [4, 6] overlap");
  // A later tensor overlapping an earlier long one, not its direct predecessor.
  check(R"({"a": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]},
             "b": {"dtype": "U8", "shape": [2], "data_offsets": [2, 4]},
             "c": {"dtype": "U8", "shape": [2], "data_offsets": [10, 12]}})",
        16, "overlap");
  // Adjacent tensors, gaps and empty tensors are fine.
  auto ok
    = raw_file(tmp, "ok.safetensors",
               R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                         "e": {"dtype": "F32", "shape": [0], "data_offsets": [2, 2]},
                         "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]},
                         "c": {"dtype": "U8", "shape": [2], "data_offsets": [12, 14]}})",
               16);
  auto f = safetensors_file::open(ok);
  CAF_REQUIRE(f);
  CAF_CHECK_EQUAL((*f)->tensors().size(), 4u);
}

CAF_TEST(random corruption never crashes) {
  // Mutated or truncated files either open with every tensor inside the file,
  // or fail with an error naming the file; run under ASan/UBSan this also
  // checks the parser's bounds.
  test::temp_dir tmp;
  auto good = tmp.file("good.safetensors");
  std::vector<tensor_to_write> ts;
  ts.push_back(test::make_tensor("model.norm.weight", {4}, {1, 2, 3, 4}));
  ts.push_back(tensor_to_write{"b", dtype::bf16, {2, 1}, {1, 2, 3, 4}});
  ts.push_back(tensor_to_write{"c", dtype::i64, {1}, {0, 0, 0, 0, 0, 0, 0, 1}});
  CAF_REQUIRE(!write_safetensors(good, ts));
  auto raw = test::read_text(good);
  uint64_t state = 12345;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  auto path = tmp.file("bad.safetensors");
  size_t opened = 0;
  size_t failed = 0;
  for (int round = 0; round < 3000; ++round) {
    auto bytes = raw;
    if (round % 4 == 0) {
      bytes.resize(next() % bytes.size());
    } else {
      auto flips = 1 + next() % 3;
      for (size_t i = 0; i < flips; ++i)
        bytes[next() % bytes.size()] = static_cast<char>(next() % 256);
    }
    test::write_text(path, bytes);
    auto f = safetensors_file::open(path);
    if (!f) {
      ++failed;
      auto msg = describe(f.error());
      if (msg.rfind(path + ": ", 0) != 0 || msg.find('\n') != std::string::npos)
        CAF_ERROR("bad message: " << msg);
      continue;
    }
    ++opened;
    for (auto& t : (*f)->tensors()) {
      volatile uint8_t sum = 0;
      for (size_t i = 0; i < t.nbytes;
           ++i) // touches every byte: ASan/SIGBUS if outside
        sum = sum + t.data[i];
    }
  }
  CAF_MESSAGE(opened << " mutated files opened, " << failed << " rejected");
  CAF_CHECK_GREATER(failed, 1000u);
}
