#define CAF_SUITE gpu.cuda_dense_decode

// The dense products of decode steps (gpu/cuda/dense_decode.cuh) and the
// chained launches they and the other step kernels use
// (gpu/cuda/chained_launch.cuh), on fresh random inputs, outputs poisoned
// with 0xff bytes (NaN) before each run. Bounds:
// - dense_decode (each K split's partial product of bf16 rows and weights;
//   1 to 32 rows, 16 to 32000 outputs, K of 32 to 4096, 1 to 8 splits)
//   against float64: ‖got − want‖/‖want‖ ≤ 1e-5 (f32 accumulation);
// - 24 steps of x <- x + W · bf16(rms_norm(x)) (dense_decode, add_rms_norm)
//   captured into one graph, chained and plain, against the CPU's
//   recurrence: ≤ 1e-2 (bf16 roundings of nearly equal norms may differ; a
//   kernel reading its predecessor's input before it was written is off by
//   about a whole update, order 1).
// Without a GPU (or a CUDA build) every case prints VOLT_GPU_SKIPPED and ctest
// reports the suite as skipped.

#include "tests/gpu/gpu_test_util.hpp"
#include "tests/test_dsl.hpp"

#ifdef VOLT_HAVE_CUDA

#  include <random>
#  include <vector>

#  include "gpu/cpu/cpu_ops.hpp"
#  include "gpu/cuda/chained_launch.cuh"
#  include "gpu/cuda/dense_decode.cuh"
#  include "gpu/cuda/dense_ops.cuh"
#  include "tests/gpu/cuda_test_util.hpp"

using namespace volt;
using namespace volt::test;

CAF_TEST(dense_decode gives the product of bf16 rows and weights per K split) {
  if (!gpu_available())
    return;
  std::mt19937 gen{16};
  struct shape {
    int64_t n_out, k, rows, splits;
  };
  double worst = 0;
  // splits 0: dense_decode_splits' choice.
  for (auto s : {shape{16, 32, 1, 1}, shape{1040, 4096, 1, 0},
                 shape{4096, 4096, 3, 0}, shape{32000, 256, 2, 1},
                 shape{2048, 1024, 8, 4}, shape{528, 2048, 17, 8},
                 shape{256, 512, 32, 2}, shape{6144, 4096, 9, 0}}) {
    CAF_REQUIRE(cuda::dense_decode_takes(s.rows, s.n_out, s.k));
    const int64_t splits = s.splits > 0
                             ? s.splits
                             : cuda::dense_decode_splits(s.n_out, s.k);
    auto w = round_bf16(uniform_floats(s.n_out * s.k, gen, 0.05f));
    auto x = round_bf16(uniform_floats(s.rows * s.k, gen, 1.0f));
    auto d_w = upload(to_bf16_bits(w));
    auto d_x = upload(to_bf16_bits(x));
    const int64_t per = s.rows * s.n_out;
    auto d_y = poisoned(sizeof(float) * splits * per);
    cuda::dense_decode(d_w.get<__nv_bfloat16>(), s.n_out, s.k,
                       d_x.get<__nv_bfloat16>(), s.rows, splits,
                       d_y.get<float>(), nullptr);
    auto got = download<float>(d_y, splits * per);
    // Each split against float64 over its own K range.
    const int64_t ks = s.k / splits;
    std::vector<double> want(splits * per);
    for (int64_t p = 0; p < splits; ++p)
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t o = 0; o < s.n_out; ++o) {
          double acc = 0;
          for (int64_t i = p * ks; i < (p + 1) * ks; ++i)
            acc += static_cast<double>(x[r * s.k + i]) * w[o * s.k + i];
          want[p * per + r * s.n_out + o] = acc;
        }
    auto err = rel_error(got, want);
    worst = std::max(worst, err);
    CAF_CHECK_LESS_OR_EQUAL(err, 1e-5);
  }
  // What the decode kernel does not take goes to cuBLAS.
  CAF_CHECK(!cuda::dense_decode_takes(1, 1000, 4096));
  CAF_CHECK(!cuda::dense_decode_takes(1, 4096, 100));
  CAF_CHECK(!cuda::dense_decode_takes(33, 4096, 4096));
  CAF_CHECK(!cuda::dense_decode_takes(0, 4096, 4096));
  CAF_MESSAGE("dense_decode worst " << sci(worst));
}

CAF_TEST(chained kernels in a graph see what the kernels before them wrote) {
  if (!gpu_available())
    return;
  // A residual recurrence, x <- x + W · bf16(rms_norm(x)), 24 times over:
  // each product reads the norm the kernel before it wrote and each norm
  // the partials and the residual the kernels before it wrote, so a kernel
  // that ran ahead of its predecessor would read a stale input, off by
  // about a whole step's update (order 1 against x's order 1). Captured
  // into one graph and replayed, as decode steps are, against the same
  // recurrence on the CPU (float64 products of the same bf16 inputs).
  std::mt19937 gen{17};
  const int64_t dim = 1024, steps = 24;
  const float eps = 1e-5f;
  for (int64_t rows : {1, 8}) {
    for (bool chained : {true, false}) {
      cuda::set_chained_launch(chained);
      auto w = round_bf16(uniform_floats(dim * dim, gen, 0.03f));
      auto norm_w = uniform_floats(dim, gen, 0.2f);
      for (auto& v : norm_w)
        v += 1.0f;
      auto x0 = uniform_floats(rows * dim, gen, 1.0f);
      const int64_t splits = cuda::dense_decode_splits(dim, dim);
      auto d_w = upload(to_bf16_bits(w));
      auto d_norm = upload(norm_w);
      auto d_x = upload(x0);
      auto d_xn = poisoned(2 * rows * dim);
      auto d_parts = poisoned(sizeof(float) * splits * rows * dim);
      cuda::stream s;
      cudaGraph_t graph = nullptr;
      CUDA_CHECK(cudaStreamBeginCapture(s.get(), cudaStreamCaptureModeGlobal));
      cuda::rms_norm(d_x.get<float>(), nullptr, d_norm.get<float>(), rows,
                     dim, eps, d_xn.get<__nv_bfloat16>(), nullptr, nullptr,
                     s.get());
      for (int64_t i = 0; i < steps; ++i) {
        cuda::dense_decode(d_w.get<__nv_bfloat16>(), dim, dim,
                           d_xn.get<__nv_bfloat16>(), rows, splits,
                           d_parts.get<float>(), s.get());
        cuda::add_rms_norm(d_x.get<float>(), d_parts.get<float>(), splits,
                           d_norm.get<float>(), rows, dim, eps,
                           d_xn.get<__nv_bfloat16>(), nullptr, nullptr,
                           s.get());
      }
      CUDA_CHECK(cudaStreamEndCapture(s.get(), &graph));
      cudaGraphExec_t exec = nullptr;
      CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
      CUDA_CHECK(cudaGraphLaunch(exec, s.get()));
      CUDA_CHECK(cudaStreamSynchronize(s.get()));
      CUDA_CHECK(cudaGraphExecDestroy(exec));
      CUDA_CHECK(cudaGraphDestroy(graph));
      auto got = download<float>(d_x, rows * dim);
      // The CPU's recurrence.
      std::vector<float> x = x0, xn(rows * dim);
      auto norm = [&] {
        cpu::rms_norm(x.data(), norm_w.data(), rows, dim, eps, xn.data());
        xn = round_bf16(xn);
      };
      norm();
      for (int64_t i = 0; i < steps; ++i) {
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t o = 0; o < dim; ++o) {
            double acc = 0;
            for (int64_t j = 0; j < dim; ++j)
              acc += static_cast<double>(xn[r * dim + j]) * w[o * dim + j];
            x[r * dim + o] += static_cast<float>(acc);
          }
        norm();
      }
      auto err = rel_error(got, x);
      CAF_MESSAGE("rows " << rows << (chained ? ", chained" : ", plain")
                          << ": x after " << steps << " steps "
                          << sci(err));
      CAF_CHECK_LESS_OR_EQUAL(err, 1e-2);
    }
  }
  cuda::set_chained_launch(true);
}

#else // VOLT_HAVE_CUDA

CAF_TEST(cuda dense decode needs a CUDA build) {
  volt::test::report_gpu_skip("volt was built without CUDA");
}

#endif // VOLT_HAVE_CUDA
