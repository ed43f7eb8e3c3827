#!/usr/bin/env python3
# Writes a Mixtral checkpoint as wide as Mixtral-8x7B (hidden 4096) with tiny
# attention (one head of 64) and tiny experts (ffn 16), float32, random
# weights: its expert rows weigh on a node link what Mixtral's do (16 KiB per
# row) while its experts cost the CPU a small fraction of a real one's, so
# `volt-node bench dispatch` or a router with a worker on it shows what
# carrying Mixtral-wide rows costs. Standard library only.
#   scripts/wide_checkpoint.py DIR [LAYERS]   (default 2 layers, ~22 MB)
import json, random, struct, os, sys
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
H, F, L, E, V, HD = 4096, 16, int(sys.argv[2]) if len(sys.argv) > 2 else 2, 8, 32, 64
cfg = {"architectures": ["MixtralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
       "hidden_act": "silu", "hidden_size": H, "intermediate_size": F,
       "max_position_embeddings": 4096, "model_type": "mixtral", "num_attention_heads": 1,
       "head_dim": HD, "num_experts_per_tok": 2, "num_hidden_layers": L,
       "num_key_value_heads": 1, "num_local_experts": E, "rms_norm_eps": 1e-5,
       "rope_theta": 1e6, "sliding_window": None, "tie_word_embeddings": False,
       "torch_dtype": "float32", "vocab_size": V}
json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
rng = random.Random(7)
tensors = []
def add(name, shape, scale=0.05, ones=False):
    n = 1
    for d in shape: n *= d
    vals = [1.0] * n if ones else [rng.uniform(-scale, scale) for _ in range(n)]
    tensors.append((name, shape, struct.pack(f"<{n}f", *vals)))
add("model.embed_tokens.weight", [V, H], 1.0)
add("model.norm.weight", [H], ones=True)
add("lm_head.weight", [V, H])
for l in range(L):
    p = f"model.layers.{l}."
    add(p + "input_layernorm.weight", [H], ones=True)
    add(p + "post_attention_layernorm.weight", [H], ones=True)
    add(p + "self_attn.q_proj.weight", [HD, H])
    add(p + "self_attn.k_proj.weight", [HD, H])
    add(p + "self_attn.v_proj.weight", [HD, H])
    add(p + "self_attn.o_proj.weight", [H, HD])
    add(p + "block_sparse_moe.gate.weight", [E, H], 0.5)
    for e in range(E):
        q = p + f"block_sparse_moe.experts.{e}."
        add(q + "w1.weight", [F, H]); add(q + "w3.weight", [F, H]); add(q + "w2.weight", [H, F])
header, off = {}, 0
for name, shape, data in tensors:
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
    off += len(data)
hb = json.dumps(header).encode()
hb += b" " * ((8 - len(hb) % 8) % 8)
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hb))); f.write(hb)
    for _, _, data in tensors: f.write(data)
