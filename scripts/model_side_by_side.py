#!/usr/bin/env python3
"""Prints the table of scripts/bench_model_gpu.sh from the JSON it left in OUT:
Volt (bench model) against transformers (the team's checkpoint tool) on the same
checkpoint and card, per layer count, with the floors and a projection to 32 layers.
usage: model_side_by_side.py OUT LAYERS..."""
import json, os, re, sys

out, layers = sys.argv[1], [int(x) for x in sys.argv[2:]]


def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            text = f.read().strip().splitlines()
        return json.loads(text[-1]) if text else None
    except (OSError, ValueError):
        return None


def rel_error(v):
    """The logits error against the CPU: '' when not checked (-1), NaN where
    bench model printed null (JSON has no NaN)."""
    x = v["cpu_logits_rel_error"]
    return "NaN" if x is None else f"{x:.2e}" if x >= 0 else ""


def read_seconds(l):
    try:
        m = re.search(r"([0-9.]+) s", open(os.path.join(out, f"read_L{l}.txt")).read())
        return float(m.group(1))
    except (OSError, AttributeError):
        return None


rows = []
for l in layers:
    v, hf = load(f"volt_L{l}_none.json"), load(f"hf_L{l}.json")
    if not v:
        print(f"{l} layers: no Volt result (see volt_L{l}_none.err)")
        continue
    q = load(f"volt_L{l}_int8.json")
    d = {x["batch"]: x for x in v["decode"]}
    p = {x["tokens"]: x for x in v["prefill"]}
    rows.append((l, v, q, d, p, hf, read_seconds(l)))

if rows:
    v0 = rows[0][1]
    print(f"card: {v0['card']}; copy {v0['copy_gbs']:.0f} GB/s, bf16 GEMM {v0['bf16_tflops']:.0f} TFLOP/s (measured)\n")
    print("| layers | batch | Volt ms/step | floor ms | ratio | transformers eager | static+compile |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for l, v, q, d, p, hf, _ in rows:
        for b, x in sorted(d.items()):
            eager = f"{hf['eager_step_ms']:.2f}" if hf and b == 1 else ""
            comp = f"{hf['compiled_step_ms']:.2f}" if hf and b == 1 and hf.get("compiled_step_ms") else ""
            print(f"| {l} | {b} | {x['step_ms']:.3f} | {x['floor_ms']:.3f} | {x['step_ms'] / x['floor_ms']:.2f} | {eager} | {comp} |")
    print("\n| layers | int8 batch 1 ms | int8 / bf16 | int8 batch 32 ms |")
    print("| ---: | ---: | ---: | ---: |")
    for l, v, q, d, p, hf, _ in rows:
        if q:
            qd = {x["batch"]: x for x in q["decode"]}
            print(f"| {l} | {qd[1]['step_ms']:.3f} | {qd[1]['step_ms'] / d[1]['step_ms']:.2f} | {qd.get(32, {}).get('step_ms', 0):.3f} |")
    print("\n| layers | prefill tokens | tokens/s | TFLOP/s | share of measured bf16 rate | transformers tokens/s |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for l, v, q, d, p, hf, _ in rows:
        hp = load(f"hf_prefill_L{l}.json")
        hp = {x["tokens"]: x for x in hp["prefill"]} if hp else {}
        for n, x in sorted(p.items()):
            t = f"{hp[n]['tokens_per_second']:.0f}" if n in hp else ""
            print(f"| {l} | {n} | {x['tokens_per_second']:.0f} | {x['tflops']:.0f} | {x['tflops'] / v['bf16_tflops']:.0%} | {t} |")
    for l, v, q, d, p, hf, _ in rows:
        simt = load(f"volt_L{l}_simt.json")
        if simt:
            for x in simt["prefill"]:
                tc = p.get(x["tokens"])
                if tc:
                    print(f"  prefill {x['tokens']} ({l} layers): SIMT attention {x['tokens_per_second']:.0f} tokens/s, "
                          f"tensor cores {tc['tokens_per_second']:.0f} tokens/s")
            if rel_error(simt):
                print(f"  logits vs CPU f32 with SIMT prefill attention: {rel_error(simt)}")
    print("\n| layers | load s | read once (cat) s | load / read | host RSS MiB (peak) | logits vs CPU f32 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for l, v, q, d, p, hf, rs in rows:
        ratio = f"{v['load_seconds'] / rs:.2f}" if rs else ""
        err = rel_error(v)
        print(f"| {l} | {v['load_seconds']:.2f} | {rs if rs else ''} | {ratio} | {v['rss_mib_after']:.0f} ({v['rss_mib_peak']:.0f}) | {err} |")
    # Projection: a step is a constant (LM head, launches) plus a per-layer part.
    if len(rows) >= 2:
        (l1, _, _, d1, *_), (l2, _, _, d2, *_) = rows[0], rows[1]
        print("\nprojection to 32 layers (linear in layers through the two points):")
        for b in sorted(d1):
            if b in d2:
                slope = (d2[b]["step_ms"] - d1[b]["step_ms"]) / (l2 - l1)
                t32 = d1[b]["step_ms"] + slope * (32 - l1)
                print(f"  batch {b}: {t32:.2f} ms/step, {b * 1000 / t32:.0f} tokens/s")
