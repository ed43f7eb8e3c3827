#pragma once

// CPU reference ops (float32). Each function validates nothing: the host layer
// (model/, actors/) checks shapes once, the ops compute. Buffers are listed as
// input/output with their shapes.

#include <cstdint>

#include "gpu/ops.hpp"

namespace volt::cpu {

/// Gathers rows of the embedding table.
/// - table (in):  [vocab, hidden]
/// - ids   (in):  [n_tokens], each in [0, vocab)
/// - out   (out): [n_tokens, hidden]
void embedding(const float* table, int64_t hidden, const int32_t* ids,
               int64_t n_tokens, float* out);

/// RMSNorm: out = x / sqrt(mean(x^2) + eps) * weight. `out` may alias `x`.
/// - x      (in):  [n_rows, dim]
/// - weight (in):  [dim]
/// - out    (out): [n_rows, dim]
void rms_norm(const float* x, const float* weight, int64_t n_rows, int64_t dim,
              float eps, float* out);

/// y = x · wᵀ, the layout of PyTorch's nn.Linear (weights stored [out, in]).
/// - x (in):  [n_rows, in_dim]
/// - w (in):  [out_dim, in_dim]
/// - y (out): [n_rows, out_dim]; must not alias x
void matmul_nt(const float* x, const float* w, int64_t n_rows, int64_t in_dim,
               int64_t out_dim, float* y);

/// y = x · wᵀ with bf16 weights (their bits, [out, in]), each widened to
/// float as read: equals matmul_nt over the widened weights to the bit. The
/// output rows are split over the compute threads (parallel_for).
/// - x (in):  [n_rows, in_dim]
/// - w (in):  [out_dim, in_dim] bf16, rows w_stride elements apart (0:
///            in_dim; more reads columns [0, in_dim) of a wider matrix)
/// - y (out): [n_rows, out_dim]; must not alias x
void matmul_nt_bf16(const float* x, const uint16_t* w, int64_t n_rows,
                    int64_t in_dim, int64_t out_dim, float* y,
                    int64_t w_stride = 0);

/// Rotary position embedding in the "rotate half" form of Hugging Face
/// Llama/Mixtral: pairs (i, i + head_dim/2) rotate by position *
/// theta^(-2i/head_dim). In place.
/// Rotates queries and keys together (each angle computed once per token);
/// `k` may be null with k_heads 0.
/// - q         (in/out): [n_tokens, q_heads, head_dim]
/// - k         (in/out): [n_tokens, k_heads, head_dim]
/// - positions (in):     [n_tokens]
void rope(float* q, int64_t q_heads, float* k, int64_t k_heads,
          const int32_t* positions, int64_t n_tokens, int64_t head_dim,
          double theta);

/// Stores the K/V rows of new tokens into their slots of the paged cache.
/// - k, v        (in):  [n_tokens, n_kv_heads, head_dim]
/// - positions   (in):  [n_tokens], the token's position within its sequence
/// - block_table (in):  [>= max(positions)/page_size + 1], physical page of
/// each logical page
/// - cache       (out): the slots of those positions
void kv_write(const kv_pages& cache, const int32_t* block_table,
              const int32_t* positions, int64_t n_tokens, const float* k,
              const float* v);

/// Causal grouped-query attention of one sequence's query tokens over its paged
/// K/V: query i attends to the keys at positions [0, positions[i]] (narrowed by
/// the sliding window), reading them through `block_table`. Query head h uses
/// K/V head h / (n_heads / n_kv_heads). Scale 1/sqrt(head_dim); softmax in
/// float32 with max shift.
/// - q           (in):  [n_tokens, n_heads, head_dim]
/// - positions   (in):  [n_tokens]
/// - block_table (in):  pages covering positions [0, max(positions)]
/// - out         (out): [n_tokens, n_heads, head_dim]
void paged_attention(const float* q, const int32_t* positions, int64_t n_tokens,
                     const kv_pages& cache, const int32_t* block_table,
                     const attention_dims& dims, float* out);

/// Mixtral routing: softmax over all experts, top-k, weights renormalised to
/// sum to 1. Ties keep the lower expert id first (as torch.topk on CPU does for
/// equal values).
///
/// With `available`, experts without a live host are taken out after the
/// choice (degraded routing): a token keeps the available ones of its top k,
/// their weights renormalised over them; a token whose k are all unavailable
/// takes the top k of the available experts instead. Slots left over hold
/// the token's first expert with weight 0, so that every token still has k
/// slots (the dispatch plan, the CUDA graphs and combine count on n * k
/// rows) and the result is the same as without those slots. Requires at
/// least one available expert. Without a dropped expert the result is bit for
/// bit the unmasked one.
/// - logits       (in):  [n_tokens, n_experts]
/// - available    (in):  [n_experts], non-zero for experts that may be
///                       chosen; null: all of them
/// - topk_ids     (out): [n_tokens, k], by descending weight
/// - topk_weights (out): [n_tokens, k]
/// - degraded     (out): [n_tokens], set to 1 for a token whose top k lost an
///                       expert, left alone otherwise; may be null
void topk_gating(const float* logits, int64_t n_tokens, int64_t n_experts,
                 int64_t k, int32_t* topk_ids, float* topk_weights,
                 const uint8_t* available = nullptr,
                 uint8_t* degraded = nullptr);

/// One expert's SwiGLU FFN: out = w2 · (silu(w1 · x) * (w3 · x)).
/// - x       (in):  [n_rows, hidden]
/// - w1, w3  (in):  [ffn, hidden]
/// - w2      (in):  [hidden, ffn]
/// - scratch (tmp): [2, n_rows, ffn]
/// - out     (out): [n_rows, hidden]
void swiglu_expert(const float* x, const float* w1, const float* w3,
                   const float* w2, int64_t n_rows, int64_t hidden, int64_t ffn,
                   float* scratch, float* out);

/// Rounds each value to the nearest bf16 (ties to even), kept as float:
/// what the GPU's __float2bfloat16_rn does to finite values.
/// - x (in/out): [n]
void round_to_bf16(float* x, int64_t n);

/// One expert's SwiGLU FFN over its bf16 weights in the GPU's layout (an
/// expert cache's host copy), as the GPU's decode path computes it, so that
/// an expert computed on the host matches one computed on the device: sums
/// in float over the widened weights, and the hidden activation
/// h = silu(w1 · x) * (w3 · x) rounded to bf16 before w2 · h. Without that
/// rounding it would equal swiglu_expert over the widened weights.
/// - x       (in):  [n_rows, hidden]
/// - w13     (in):  [2 * ffn, hidden] bf16: rows [0, ffn) are w1, the rest w3
/// - w2      (in):  [hidden, ffn] bf16
/// - scratch (tmp): [2, n_rows, ffn]
/// - out     (out): [n_rows, hidden]
void swiglu_expert_bf16(const float* x, const uint16_t* w13, const uint16_t* w2,
                        int64_t n_rows, int64_t hidden, int64_t ffn,
                        float* scratch, float* out);

/// swiglu_expert_bf16 over the hidden units [first, last) of the FFN only:
/// w2's columns [first, last) times their activations. The parts over
/// ranges that cover [0, ffn) sum to the whole expert (up to the order of
/// the sums): an expert split between the host and the GPU.
/// - x, w13, w2 (in): as swiglu_expert_bf16, the whole expert's
/// - scratch    (tmp): [2, n_rows, last - first]
/// - out        (out): [n_rows, hidden]
void swiglu_expert_bf16_part(const float* x, const uint16_t* w13,
                             const uint16_t* w2, int64_t n_rows, int64_t hidden,
                             int64_t ffn, int64_t first, int64_t last,
                             float* scratch, float* out);

/// Index of the largest value; the lowest index wins ties (torch.argmax's
/// rule).
/// - x (in): [n]
int64_t argmax(const float* x, int64_t n);

} // namespace volt::cpu
