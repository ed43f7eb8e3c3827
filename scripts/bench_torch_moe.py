#!/usr/bin/env python3
"""PyTorch baseline for `volt-node bench moe-layer`, run on the GPU machine.

Times, on the same shapes (Mixtral-8x7B by default) and random bf16 weights:
  * transformers' MixtralSparseMoeBlock (router + experts as shipped);
  * a sort + torch._grouped_mm version (the fastest plain-PyTorch MoE);
  * torch softmax + topk + renormalise gating at --gating-tokens tokens, as 20
    back-to-back calls per sample (volt's bench times its fused kernel the same way).
CUDA events, warm-up, median of --iters. Prints one JSON object.
"""
import argparse
import json
import statistics

import torch


def time_ms(fn, iters, warmup, repeat=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(repeat):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / repeat)
    return statistics.median(times)


def make_block(hidden, ffn, experts, topk):
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    cfg = MixtralConfig(hidden_size=hidden, intermediate_size=ffn,
                        num_local_experts=experts, num_experts_per_tok=topk)
    # Built on the GPU in bf16 directly: 1.4 G parameters would take minutes on the host.
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device("cuda"):
            block = MixtralSparseMoeBlock(cfg).eval()
    finally:
        torch.set_default_dtype(default_dtype)
    with torch.no_grad():
        for p in block.parameters():  # never zeros or uninitialised memory
            fan_in = p.shape[-1]
            p.uniform_(-fan_in ** -0.5, fan_in ** -0.5)
    return block


def grouped_moe(x, gate_w, w13, w2, topk):
    """Router, softmax → top-k → renormalise, sort by expert, two grouped GEMMs, combine."""
    n, hidden = x.shape
    experts, two_ffn, _ = w13.shape
    ffn = two_ffn // 2
    probs = torch.softmax((x @ gate_w.t()).float(), dim=-1)
    top_w, top_i = torch.topk(probs, topk, dim=-1)
    top_w = top_w / top_w.sum(dim=-1, keepdim=True)
    flat = top_i.flatten()
    order = torch.argsort(flat, stable=True)
    token = order // topk
    offs = torch.bincount(flat, minlength=experts).cumsum(0).to(torch.int32)
    rows = x[token]
    gu = torch._grouped_mm(rows, w13.transpose(-2, -1), offs=offs)
    h = torch.nn.functional.silu(gu[:, :ffn]) * gu[:, ffn:]
    y = torch._grouped_mm(h, w2.transpose(-2, -1), offs=offs)
    y = y.float() * top_w.flatten()[order, None]
    return torch.zeros(n, hidden, device=x.device, dtype=torch.float32).index_add_(0, token, y)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", default="1,8,32,128,512,2048")
    ap.add_argument("--hidden", type=int, default=4096)
    ap.add_argument("--ffn", type=int, default=14336)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--topk", type=int, default=2)
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--gating-tokens", type=int, default=4096)
    a = ap.parse_args()
    tokens = [int(t) for t in a.tokens.split(",")]
    torch.manual_seed(0)
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
           "hidden": a.hidden, "ffn": a.ffn, "experts": a.experts, "topk": a.topk,
           "iters": a.iters, "rows": []}
    try:
        import transformers
        out["transformers"] = transformers.__version__
        block = make_block(a.hidden, a.ffn, a.experts, a.topk)
    except Exception as e:  # report, keep going with the grouped version
        block = None
        out["transformers_error"] = repr(e)
    h, f, e = a.hidden, a.ffn, a.experts
    gate_w = (torch.rand(e, h, device="cuda", dtype=torch.bfloat16) * 2 - 1) * h ** -0.5
    w13 = (torch.rand(e, 2 * f, h, device="cuda", dtype=torch.bfloat16) * 2 - 1) * h ** -0.5
    w2 = (torch.rand(e, h, f, device="cuda", dtype=torch.bfloat16) * 2 - 1) * f ** -0.5
    with torch.no_grad():
        for t in tokens:
            x = torch.rand(t, h, device="cuda", dtype=torch.bfloat16) * 2 - 1
            row = {"tokens": t}
            if block is not None:
                try:
                    xb = x.view(1, t, h)
                    row["transformers_ms"] = time_ms(lambda: block(xb), a.iters, a.warmup)
                except Exception as ex:
                    row["transformers_error"] = repr(ex)
            try:
                row["grouped_mm_ms"] = time_ms(lambda: grouped_moe(x, gate_w, w13, w2, a.topk),
                                               a.iters, a.warmup)
            except Exception as ex:
                row["grouped_mm_error"] = repr(ex)
            out["rows"].append(row)
        logits = torch.randn(a.gating_tokens, e, device="cuda", dtype=torch.float32) * 4

        def gating():
            p = torch.softmax(logits, dim=-1)
            w, i = torch.topk(p, a.topk, dim=-1)
            return w / w.sum(dim=-1, keepdim=True), i

        out["gating_tokens"] = a.gating_tokens
        out["gating_ms"] = time_ms(gating, max(a.iters, 50), a.warmup, repeat=20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
