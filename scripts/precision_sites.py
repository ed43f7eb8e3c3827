# Which bf16 roundings of activations move a Mixtral checkpoint's logits, and how much.
# Runs on the GPU machine (PyTorch there). A float64 forward of the prompt (prefill, no
# cache) is the reference; each variant rounds the activations at the named sites to bf16
# (the weights are bf16 in the file, exact in float64) and reports the last position's
# logits error (L2 relative, as `volt-node bench model --check-cpu` computes it) and how
# many (layer, token) routing choices changed.
#   python3 precision_sites.py CKPT_DIR PROMPT_LEN [SEED]
# Sites: xn (attention input norm), q, kv (cached keys and values), p (attention
# probabilities), attn (attention output), moe_in (experts' input), mid (silu(w1 x) * w3 x),
# ffn_out (each expert's output), xf (final norm).
import glob, json, math, sys
import torch
from safetensors import safe_open

ckpt, P = sys.argv[1], int(sys.argv[2])
seed = int(sys.argv[3]) if len(sys.argv) > 3 else 12345
cfg = json.load(open(f"{ckpt}/config.json"))
H = cfg["hidden_size"]
nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
hd = cfg.get("head_dim") or H // nh
E, K = cfg["num_local_experts"], cfg["num_experts_per_tok"]
eps = cfg["rms_norm_eps"]
theta = cfg.get("rope_theta") or cfg.get("rope_parameters", {}).get("rope_theta", 1e6)
dev = "cuda"
f64 = torch.float64

handles = {}
for f in glob.glob(f"{ckpt}/*.safetensors"):
    h = safe_open(f, "pt", device="cpu")
    for k in h.keys():
        handles[k] = h


def W(name):
    return handles[name].get_tensor(name).to(dev).to(f64)


VARIANTS = {
    "f32_everything": None,  # float32 everywhere, for scale
    "none": set(),
    "xn": {"xn"}, "q": {"q"}, "kv": {"kv"}, "p": {"p"}, "attn": {"attn"},
    "moe_in": {"moe_in"}, "mid": {"mid"}, "ffn_out": {"ffn_out"}, "xf": {"xf"},
    "volt_decode_now": {"xn", "kv", "attn", "moe_in", "mid", "xf"},
    "volt_prefill_now": {"xn", "kv", "q", "p", "attn", "moe_in", "mid", "xf"},
    "gemv_f32_act": {"kv", "mid"},
    "gemv_f32_act_mid32": {"kv"},
    "all_but_kv": {"xn", "q", "p", "attn", "moe_in", "mid", "ffn_out", "xf"},
}


def rnd(x, site, sites):
    if sites is None:
        return x.to(torch.float32).to(f64)
    return x.to(torch.bfloat16).to(f64) if site in sites else x


def rms(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def rope(x, pos):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, device=dev, dtype=f64) / hd))
    fr = pos[:, None].to(f64) * inv[None]
    cos, sin = torch.cat([fr, fr], -1).cos(), torch.cat([fr, fr], -1).sin()
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    return x * cos[:, None] + torch.cat([-x2, x1], -1) * sin[:, None]


g = torch.Generator().manual_seed(seed)
ids = torch.randint(0, cfg["vocab_size"], (P,), generator=g).to(dev)
pos = torch.arange(P, device=dev)
emb = W("model.embed_tokens.weight")
state = {v: emb[ids].clone() for v in VARIANTS}
routes = {v: [] for v in VARIANTS}
mask = torch.full((P, P), float("-inf"), device=dev, dtype=f64).triu(1)
for l in range(cfg["num_hidden_layers"]):
    p = f"model.layers.{l}."
    ln1, ln2 = W(p + "input_layernorm.weight"), W(p + "post_attention_layernorm.weight")
    wq, wk, wv, wo = (W(p + f"self_attn.{n}_proj.weight") for n in "qkvo")
    gate = W(p + "block_sparse_moe.gate.weight")
    experts = [[W(p + f"block_sparse_moe.experts.{e}.{n}.weight") for n in ("w1", "w2", "w3")]
               for e in range(E)]
    for v, sites in VARIANTS.items():
        x = state[v]
        xn = rnd(rms(x, ln1), "xn", sites)
        q = rnd(rope((xn @ wq.T).view(P, nh, hd), pos), "q", sites)
        k = rnd(rope((xn @ wk.T).view(P, nkv, hd), pos), "kv", sites)
        val = rnd((xn @ wv.T).view(P, nkv, hd), "kv", sites)
        rep = nh // nkv
        k, val = k.repeat_interleave(rep, 1), val.repeat_interleave(rep, 1)
        s = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(hd) + mask
        pr = rnd(torch.softmax(s, -1), "p", sites)
        a = rnd(torch.einsum("hqk,khd->qhd", pr, val).reshape(P, nh * hd), "attn", sites)
        x = x + a @ wo.T
        xm = rms(x, ln2)
        probs = torch.softmax(xm @ gate.T, -1)
        tw, ti = probs.topk(K, -1)
        tw = tw / tw.sum(-1, keepdim=True)
        routes[v].append(ti.sort(-1).values.cpu())
        xe = rnd(xm, "moe_in", sites)
        out = torch.zeros_like(x)
        for e in range(E):
            rows = (ti == e).any(-1).nonzero().flatten()
            if rows.numel() == 0:
                continue
            w1, w2, w3 = experts[e]
            xi = xe[rows]
            mid = rnd(torch.nn.functional.silu(xi @ w1.T) * (xi @ w3.T), "mid", sites)
            y = rnd(mid @ w2.T, "ffn_out", sites)
            wgt = (tw[rows] * (ti[rows] == e)).sum(-1, keepdim=True)
            out[rows] += wgt * y
        state[v] = x + out
    del experts, wq, wk, wv, wo
    torch.cuda.empty_cache()
fn, head = W("model.norm.weight"), W("lm_head.weight")
logits = {}
for v, sites in VARIANTS.items():
    xf = rnd(rms(state[v][-1:], fn), "xf", sites)
    logits[v] = (xf @ head.T).flatten()
ref = logits["none"]
for v in VARIANTS:
    err = ((logits[v] - ref).norm() / ref.norm()).item()
    flips = sum(int((a != b).any(-1).sum()) for a, b in zip(routes[v], routes["none"]))
    print(json.dumps({"variant": v, "sites": sorted(VARIANTS[v] or ["f32"]),
                      "logits_rel_error": err, "routing_changes": flips,
                      "argmax_same": bool(logits[v].argmax() == ref.argmax())}))
