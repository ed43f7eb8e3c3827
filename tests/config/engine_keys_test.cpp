#define CAF_SUITE config.engine_keys

// The [kv_cache] and [engine] sections: defaults, values from TOML and the
// environment, range errors naming the key, and which pool-size key wins.

#include "config/node_config.hpp"

#include "model/page_table.hpp"
#include "tests/config/config_test_helpers.hpp"
#include "tests/test_dsl.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(defaults match the documented values) {
  node_config cfg;
  CAF_CHECK_EQUAL(cfg.kv_cache.page_size, 16u);
  CAF_CHECK_EQUAL(cfg.kv_cache.num_pages, 0u);
  CAF_CHECK_EQUAL(cfg.kv_cache.memory_mib, 0u);
  CAF_CHECK_EQUAL(cfg.engine.max_queue, 256u);
  CAF_CHECK_EQUAL(cfg.engine.max_batch, 64u);
  CAF_CHECK_EQUAL(cfg.engine.prefill_chunk, 512u);
  CAF_CHECK_EQUAL(cfg.engine.compute_threads, 0u);
  CAF_CHECK_EQUAL(cfg.engine.rows_per_part, 0u);
}

CAF_TEST(values from the file) {
  auto cfg = parse(with_model(R"([kv_cache]
page_size = 32
num_pages = 1000
memory_mib = 512
[engine]
max_queue = 8
max_batch = 4
prefill_chunk = 128
rows_per_part = 4
)"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->kv_cache.page_size, 32u);
  CAF_CHECK_EQUAL(cfg->kv_cache.num_pages, 1000u);
  CAF_CHECK_EQUAL(cfg->kv_cache.memory_mib, 512u);
  CAF_CHECK_EQUAL(cfg->engine.max_queue, 8u);
  CAF_CHECK_EQUAL(cfg->engine.max_batch, 4u);
  CAF_CHECK_EQUAL(cfg->engine.prefill_chunk, 128u);
  CAF_CHECK_EQUAL(cfg->engine.rows_per_part, 4u);
}

CAF_TEST(values from the environment) {
  auto cfg = parse(with_model(""), {{"VOLT_KV_CACHE_PAGE_SIZE", "8"},
                                    {"VOLT_KV_CACHE_MEMORY_MIB", "64"},
                                    {"VOLT_ENGINE_MAX_BATCH", "1"}});
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  CAF_CHECK_EQUAL(cfg->kv_cache.page_size, 8u);
  CAF_CHECK_EQUAL(cfg->kv_cache.memory_mib, 64u);
  CAF_CHECK_EQUAL(cfg->engine.max_batch, 1u);
}

CAF_TEST(out of range values name the key) {
  CHECK_CONFIG_ERROR(parse(with_model("[kv_cache]\npage_size = 0\n")),
                     "node.toml: [kv_cache] page_size: expected an integer in "
                     "[1, 4096], got 0");
  CHECK_CONFIG_ERROR(parse(with_model("[kv_cache]\npage_size = 4097\n")),
                     "[kv_cache] page_size", "got 4097");
  CHECK_CONFIG_ERROR(parse(with_model("[kv_cache]\nnum_pages = -1\n")),
                     "[kv_cache] num_pages", "got -1");
  CHECK_CONFIG_ERROR(parse(with_model("[kv_cache]\nmemory_mib = 99999999\n")),
                     "[kv_cache] memory_mib", "got 99999999");
  CHECK_CONFIG_ERROR(parse(with_model("[engine]\nmax_queue = 0\n")),
                     "[engine] max_queue: expected an integer in [1, 1048576]");
  CHECK_CONFIG_ERROR(parse(with_model("[engine]\nmax_batch = 0\n")),
                     "[engine] max_batch", "got 0");
  CHECK_CONFIG_ERROR(parse(with_model("[engine]\nmax_batch = 5000\n")),
                     "[engine] max_batch", "[1, 4096]");
  CHECK_CONFIG_ERROR(parse(with_model("[engine]\nprefill_chunk = 0\n")),
                     "[engine] prefill_chunk", "got 0");
  CHECK_CONFIG_ERROR(parse(with_model("[engine]\nrows_per_part = 5000\n")),
                     "[engine] rows_per_part: expected an integer in [0, 4096]",
                     "got 5000");
  CHECK_CONFIG_ERROR(parse(with_model("[engine]\nmax_queue = \"many\"\n")),
                     "[engine] max_queue");
  CHECK_CONFIG_ERROR(parse(with_model(""), {{"VOLT_ENGINE_MAX_BATCH", "0"}}),
                     "VOLT_ENGINE_MAX_BATCH", "got 0");
}

CAF_TEST(num_pages wins over memory_mib) {
  auto cfg = parse(with_model("[kv_cache]\nnum_pages = 10\nmemory_mib = 1\n"));
  CAF_REQUIRE_EQUAL(message_of(cfg), "");
  const auto& kv = cfg->kv_cache;
  // 256 KiB pages: 1 MiB would give 4, num_pages says 10.
  auto pages = kv_pool_pages(kv.num_pages, kv.memory_mib, 1 << 18, 4096,
                             kv.page_size);
  CAF_REQUIRE(pages);
  CAF_CHECK_EQUAL(*pages, 10);
  pages = kv_pool_pages(0, kv.memory_mib, 1 << 18, 4096, kv.page_size);
  CAF_REQUIRE(pages);
  CAF_CHECK_EQUAL(*pages, 4);
  // Neither set: one full-context sequence (4096 tokens / 16 per page).
  pages = kv_pool_pages(0, 0, 1 << 18, 4096, kv.page_size);
  CAF_REQUIRE(pages);
  CAF_CHECK_EQUAL(*pages, 256);
}
