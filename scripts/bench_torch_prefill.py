#!/usr/bin/env python3
"""Times transformers' prefill (one forward over the whole prompt, bf16 on the GPU) on a
checkpoint folder, the baseline of `volt-node bench model`'s prefill rows.

    bench_torch_prefill.py CHECKPOINT_DIR 512,2048 > hf_prefill.json

Each length: one warm-up pass, then the median of three, each between two synchronisations
(random prompts, as Volt's benchmark uses). Prints one JSON object.
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    path, lengths = sys.argv[1], [int(x) for x in sys.argv[2].split(",")]
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.bfloat16,
                                                 device_map="cuda").eval()
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(7)
    rows = []
    with torch.no_grad():
        for n in lengths:
            times = []
            for rep in range(4):
                ids = torch.randint(0, vocab, (1, n), generator=gen).cuda()
                torch.cuda.synchronize()
                t = time.perf_counter()
                model(ids, use_cache=True, logits_to_keep=1)
                torch.cuda.synchronize()
                if rep > 0:
                    times.append(time.perf_counter() - t)
            s = sorted(times)[1]
            rows.append({"tokens": n, "seconds": s, "tokens_per_second": n / s})
    print(json.dumps({"device": torch.cuda.get_device_name(),
                      "attention": model.config._attn_implementation, "prefill": rows}))


if __name__ == "__main__":
    main()
