#!/usr/bin/env python3
"""Writes the side-by-side markdown table of volt's MoE-layer bench (bf16, int8) and
the PyTorch baseline: moe_side_by_side.py BF16.json INT8.json TORCH.json GPU.txt"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except Exception:
        return None


def best(rows, tokens, path=None):
    """Fastest row for a token count (optionally of one path)."""
    cands = [r for r in rows if r["tokens"] == tokens and r["path"] != "sweep"
             and (path is None or r["path"] == path)]
    return min(cands, key=lambda r: r["median_ms"]) if cands else None


def main():
    bf16, int8, torch_res = (load(p) for p in sys.argv[1:4])
    gpu = open(sys.argv[4]).read().strip() if len(sys.argv) > 4 else ""
    print("```\n" + gpu + "\n```\n")
    if bf16:
        print(f"Card: {bf16['device']}; copy bandwidth {bf16['copy_gbs']:.0f} GB/s (read + write); "
              f"one expert bf16 {bf16['expert_bytes'] / 1e6:.1f} MB"
              + (f", int8 {int8['expert_bytes'] / 1e6:.1f} MB "
                 f"(ratio {int8['expert_bytes'] / bf16['expert_bytes']:.3f})" if int8 else "") + "\n")
    trows = {r["tokens"]: r for r in (torch_res or {}).get("rows", [])}
    print("| tokens | active | floor ms | volt bf16 decode ms | volt bf16 gemm ms | volt bf16 best ms "
          "| ratio to floor | volt int8 best ms | int8/bf16 | transformers ms | grouped_mm ms "
          "| best vs grouped_mm |")
    print("|" + " --- |" * 12)
    for tokens in sorted({r["tokens"] for r in bf16["rows"] if r["path"] != "sweep"}):
        d = best(bf16["rows"], tokens, "decode")
        g = best(bf16["rows"], tokens, "gemm")
        b = best(bf16["rows"], tokens)
        i = best(int8["rows"], tokens) if int8 else None
        t = trows.get(tokens, {})
        fmt = lambda r: f"{r['median_ms']:.3f}" if r else "-"
        tm = t.get("transformers_ms")
        gm = t.get("grouped_mm_ms")
        cells = [str(tokens), str(b["active_experts"]), f"{b['floor_ms']:.3f}", fmt(d), fmt(g),
                 f"{b['median_ms']:.3f} ({b['path']})", f"{b['median_ms'] / b['floor_ms']:.2f}",
                 f"{fmt(i)} ({i['path']})" if i else "-",
                 f"{i['median_ms'] / b['median_ms']:.2f}" if i else "-",
                 f"{tm:.3f}" if tm else "-", f"{gm:.3f}" if gm else "-",
                 f"{gm / b['median_ms']:.2f}x" if gm else "-"]
        print("| " + " | ".join(cells) + " |")
    for name, res in (("bf16", bf16), ("int8", int8)):
        sweep = [r for r in (res or {}).get("rows", []) if r["path"] == "sweep"]
        if not sweep:
            continue
        counts = sorted({r["tokens"] for r in sweep})
        print(f"\nDecode variants, {name} (median ms; ratio to floor):\n")
        print("| variant | " + " | ".join(f"{t} tok" for t in counts) + " |")
        print("|" + " --- |" * (len(counts) + 1))
        for v in sorted({r["variant"] for r in sweep}):
            cells = []
            for t in counts:
                r = next((r for r in sweep if r["variant"] == v and r["tokens"] == t), None)
                cells.append(f"{r['median_ms']:.3f} ({r['median_ms'] / r['floor_ms']:.2f})" if r else "-")
            print(f"| {v} | " + " | ".join(cells) + " |")
    if torch_res and "gating_ms" in torch_res:
        ours = bf16["gating_ms"]
        print(f"\nGating at {bf16['gating_tokens']} tokens x {bf16['experts']} experts, top-{bf16['topk']}: "
              f"volt fused {ours * 1e3:.2f} us, torch softmax+topk+renormalise "
              f"{torch_res['gating_ms'] * 1e3:.2f} us, speed-up {torch_res['gating_ms'] / ours:.1f}x")
    for k in ("transformers_error",):
        if torch_res and k in torch_res:
            print(f"\n{k}: {torch_res[k]}")


if __name__ == "__main__":
    main()
