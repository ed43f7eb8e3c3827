// cuBLASLt products with one algorithm per row-count bucket; see
// row_gemm.hpp for why.

#include "gpu/cuda/row_gemm.hpp"

#include <map>
#include <mutex>
#include <tuple>

#include <cublasLt.h>

#include "gpu/cuda/cuda_check.hpp"

namespace volt::cuda {

namespace {

/// Column-major view: yᵀ[n_out, m] = op_T(w as [k, n_out]) · xᵀ[k, m].
struct plan_key {
  int device;
  int64_t n_out, k, bucket;
  cudaDataType_t y_type;
  bool accumulate;
  bool operator<(const plan_key& o) const {
    return std::tie(device, n_out, k, bucket, y_type, accumulate)
           < std::tie(o.device, o.n_out, o.k, o.bucket, o.y_type,
                      o.accumulate);
  }
};

struct plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t w = nullptr;
  cublasLtMatmulAlgo_t algo{};
  /// The heuristics found an algorithm without workspace.
  bool usable = false;
};

/// Plans and handles live for the process (a handful per model shape).
struct registry {
  std::mutex mtx;
  std::map<int, cublasLtHandle_t> handles;
  std::map<plan_key, plan> plans;
};

registry& the_registry() {
  static auto* r = new registry;
  return *r;
}

int64_t bucket_of(int64_t m) {
  int64_t b = 16;
  while (b < m)
    b *= 2;
  return b;
}

bool lt_ok(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS;
}

/// Layout of a column-major [rows, cols] matrix with leading dimension rows.
cublasLtMatrixLayout_t layout(cudaDataType_t type, int64_t rows, int64_t cols) {
  cublasLtMatrixLayout_t out = nullptr;
  if (!lt_ok(cublasLtMatrixLayoutCreate(&out, type, static_cast<uint64_t>(rows),
                                        static_cast<uint64_t>(cols), rows)))
    return nullptr;
  return out;
}

plan make_plan(cublasLtHandle_t lt, const plan_key& key) {
  plan p;
  if (!lt_ok(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F)))
    return p;
  cublasOperation_t trans_a = CUBLAS_OP_T;
  cublasOperation_t trans_b = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a,
                                 sizeof(trans_a));
  cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b,
                                 sizeof(trans_b));
  p.w = layout(CUDA_R_16BF, key.k, key.n_out);
  auto* x = layout(CUDA_R_16BF, key.k, key.bucket);
  auto* y = layout(key.y_type, key.n_out, key.bucket);
  cublasLtMatmulPreference_t pref = nullptr;
  if (p.w != nullptr && x != nullptr && y != nullptr
      && lt_ok(cublasLtMatmulPreferenceCreate(&pref))) {
    // No workspace: one algorithm then serves every stream at once.
    uint64_t workspace = 0;
    cublasLtMatmulPreferenceSetAttribute(
      pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace,
      sizeof(workspace));
    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    if (lt_ok(cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.w, x, y, y, pref, 1,
                                             &result, &found))
        && found > 0) {
      p.algo = result.algo;
      p.usable = true;
    }
    cublasLtMatmulPreferenceDestroy(pref);
  }
  if (x != nullptr)
    cublasLtMatrixLayoutDestroy(x);
  if (y != nullptr)
    cublasLtMatrixLayoutDestroy(y);
  return p;
}

/// The plan for `key`, made on first use; null when cuBLASLt has none.
const plan* find_plan(const plan_key& key, cublasLtHandle_t* lt) {
  auto& r = the_registry();
  std::lock_guard<std::mutex> guard{r.mtx};
  auto h = r.handles.find(key.device);
  if (h == r.handles.end()) {
    cublasLtHandle_t created = nullptr;
    if (!lt_ok(cublasLtCreate(&created)))
      created = nullptr;
    h = r.handles.emplace(key.device, created).first;
  }
  *lt = h->second;
  if (*lt == nullptr)
    return nullptr;
  auto p = r.plans.find(key);
  if (p == r.plans.end())
    p = r.plans.emplace(key, make_plan(*lt, key)).first;
  return p->second.usable ? &p->second : nullptr;
}

bool run_lt(const plan_key& key, const __nv_bfloat16* w,
            const __nv_bfloat16* x, int64_t m, void* y, float beta,
            cudaStream_t stream) {
  cublasLtHandle_t lt = nullptr;
  const auto* p = find_plan(key, &lt);
  if (p == nullptr)
    return false;
  auto* x_layout = layout(CUDA_R_16BF, key.k, m);
  auto* y_layout = layout(key.y_type, key.n_out, m);
  bool done = false;
  if (x_layout != nullptr && y_layout != nullptr) {
    const float one = 1.0f;
    done = lt_ok(cublasLtMatmul(lt, p->op, &one, w, p->w, x, x_layout, &beta,
                                y, y_layout, y, y_layout, &p->algo, nullptr, 0,
                                stream));
  }
  if (x_layout != nullptr)
    cublasLtMatrixLayoutDestroy(x_layout);
  if (y_layout != nullptr)
    cublasLtMatrixLayoutDestroy(y_layout);
  return done;
}

} // namespace

void row_gemm(cublasHandle_t fallback, const __nv_bfloat16* w,
              const __nv_bfloat16* x, int64_t m, int64_t k, int64_t n_out,
              void* y, cudaDataType_t y_type, float beta,
              cudaStream_t stream) {
  if (m <= 0)
    return;
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  plan_key key{device, n_out, k, bucket_of(m), y_type, beta != 0.0f};
  if (run_lt(key, w, x, m, y, beta, stream))
    return;
  const float one = 1.0f;
  bind_stream(fallback, stream);
  CUBLAS_CHECK(cublasGemmEx(fallback, CUBLAS_OP_T, CUBLAS_OP_N,
                            static_cast<int>(n_out), static_cast<int>(m),
                            static_cast<int>(k), &one, w, CUDA_R_16BF,
                            static_cast<int>(k), x, CUDA_R_16BF,
                            static_cast<int>(k), &beta, y, y_type,
                            static_cast<int>(n_out), CUBLAS_COMPUTE_32F,
                            CUBLAS_GEMM_DEFAULT));
}

} // namespace volt::cuda
