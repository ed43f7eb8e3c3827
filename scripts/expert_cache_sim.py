#!/usr/bin/env python3
"""Replays a routing trace (volt-node bench prefetch --record-routing) through a model
of the GPU expert cache, as `bench prefetch --routing-trace` drives it: sequences of
WINDOW tokens, BATCH at a time, one token per sequence per step, a model of LAYERS
layers repeating the trace's layers, each step's layers in order, a layer's experts
pinned while it loads its misses. Prints experts loaded per step and the hit rate
for least-recently-used eviction (what the cache does without the predictor), for
the transitions the cache learns with the predictor on (without staging), and
for Belady's optimum (evict the expert whose next use is farthest: a bound no
predictor can beat without staging more than it loads).

  scripts/expert_cache_sim.py TRACE [--layers 8] [--slots 32,16] [--batch 1:48,8:96]
                               [--windows 8] [--host-ms 4.5,6.9 [--copy-ms 6.7]
                               [--step-ms 2.93]]

With --host-ms it also models [worker] expert_misses = "auto" in time (a bus
that copies one expert at a time, the host one expert after another), and
the same with one host expert per layer split with the GPU along its FFN
(wip/expert-split.bundle): the bus takes the share that lets both finish
together, counting what it still copies for earlier layers.
"""
import argparse
import bisect
import json
from collections import OrderedDict


def steps_of(trace, layers, batch, window, windows):
    """Each step as a list of (layer, experts the step's rows use there)."""
    k, tl = trace["top_k"], trace["layers"]
    routing = trace["routing"]
    windows = min(windows, len(trace["tokens"]) // window)
    steps = []
    for first in range(0, windows, batch):
        group = range(first, min(first + batch, windows))
        for pos in range(window):
            step = []
            for layer in range(layers):
                used = set()
                for w in group:
                    at = ((w * window + pos) * tl + layer % tl) * k
                    used.update(routing[at:at + k])
                step.append((layer, used))
            steps.append(step)
    return steps


def recency(steps, slots, chance=None, observe=None):
    """The cache in recency order: a layer's experts in ascending order (the
    order the cache admits them), none of the layer's own evicted for its
    misses; the victim is the one with the lowest chance(key) (all equal when
    None), the least recently used among equals. observe(layer, used) runs
    before each layer is admitted."""
    cache, loads, hits = OrderedDict(), 0, 0
    for step in steps:
        for layer, used in step:
            if observe:
                observe(layer, used)
            for e in sorted(used):
                key = (layer, e)
                if key in cache:
                    hits += 1
                    cache.move_to_end(key)
                    continue
                loads += 1
                if len(cache) >= slots:
                    order = [x for x in cache
                             if not (x[0] == layer and x[1] in used)]
                    victim = order[0] if chance is None else min(
                        order, key=lambda x: (chance(x), order.index(x)))
                    del cache[victim]
                cache[key] = True
            for e in sorted(used):
                cache.move_to_end((layer, e))
    return loads, hits


def lru(steps, slots):
    """Least recently used first. On the H100 this model gave the measured
    counts to within 1 %."""
    return recency(steps, slots)


def learned(steps, slots):
    """LRU weighed by the chance the cache learns (model/expert_slot_cache.cpp,
    observe): per layer, how often each expert followed each other one from one
    step to the next; an expert's chance is that one of its layer's latest
    experts is followed by it. The lowest chance goes, the least recently used
    among equals. On the H100 this model gave the measured counts to within 1 %."""
    observe, chance = learned_chances(steps)
    return recency(steps, slots, chance, observe)


def learned_chances(steps):
    """The cache's learned transitions: (observe(layer, used), chance(key))."""
    n_exp = 1 + max(e for step in steps for _, used in step for e in used)
    follows, followed, last = {}, {}, {}

    def observe(layer, used):
        for a in last.get(layer, ()):
            followed[(layer, a)] = followed.get((layer, a), 0.0) + 1.0
            for b in used:
                follows[(layer, a, b)] = follows.get((layer, a, b), 0.0) + 1.0
        last[layer] = sorted(used)

    def chance(key):
        layer, b = key
        none = 1.0
        for a in last.get(layer, ()):
            p = (follows.get((layer, a, b), 0.0) + 1.0 / n_exp) / (
                followed.get((layer, a), 0.0) + 1.0)
            none *= 1.0 - p
        return 1.0 - none if last.get(layer) else 0.0

    return observe, chance


def host_misses(steps, slots, copy_ms, host_ms, layer_ms, split=False):
    """[worker] expert_misses = "auto" (model/expert_slot_cache.cpp,
    place_misses) with the learned chances, in time: a miss likelier than the
    expert it would evict is kept (copied) while the bus has nothing queued (a
    free slot takes a miss at any time), the others run on the host; while
    the host would take longer for those than one more copy, the likeliest goes
    back to the bus; of the kept ones the layer waits for the j copies that make
    its wait shortest, max(j copies, the rest on the host one after another),
    the others copied in the background. The bus copies one expert at a time;
    a resident expert still landing is waited for. With `split`, the bus then
    takes over the share of one host expert that lets both finish together,
    before the background copies; the split expert is one of those copied in
    the background where there is one, and its copy then takes the part from
    the device. Returns ms per step, stall ms per step, experts copied and
    computed on the host per step."""
    observe, chance = learned_chances(steps)
    cache, landed = OrderedDict(), {}
    t = bus = stall = 0.0
    copies = on_host = 0
    for step in steps:
        for layer, used in step:
            t += layer_ms
            observe(layer, used)
            ready = t
            for e in used:
                if (layer, e) in cache:
                    cache.move_to_end((layer, e))
                    ready = max(ready, landed.get((layer, e), 0.0))

            def victim(taken):
                order = [x for x in cache if x not in taken
                         and not (x[0] == layer and x[1] in used)]
                return min(order, key=lambda x: (chance(x), order.index(x)))
            misses = sorted((e for e in used if (layer, e) not in cache),
                            key=lambda e: -chance((layer, e)))
            kept, away = [], []
            # With copies still queued on the bus a miss evicts nothing.
            bus_busy = bus > t
            for e in misses:
                v = None if len(cache) < slots else victim(kept)
                if v is None or (not bus_busy and chance((layer, e)) > chance(v)):
                    if v is not None:
                        del cache[v]
                    cache[(layer, e)] = True
                    kept.append((layer, e))
                else:
                    away.append(e)
            while away and len(away) * host_ms > (len(kept) + 1) * copy_ms:
                e = away.pop(0)
                del cache[victim(kept)]
                cache[(layer, e)] = True
                kept.append((layer, e))
            j = min(range(len(kept) + 1), key=lambda j: (
                max(j * copy_ms, (len(kept) - j + len(away)) * host_ms), j))
            hosted = len(kept) - j + len(away)
            moved = 0.0
            if split and hosted:
                # The bus is free after what it still copies for earlier
                # layers (background copies) and this layer's waited ones.
                busy = max(bus - t, 0.0) + j * copy_ms
                moved = min(1.0, max(0.0, (hosted * host_ms - busy)
                                     / (copy_ms + host_ms)))
                moved = int(moved * 14336) // 64 * 64 / 14336
            for i, key in enumerate(kept):
                if i == j and moved:
                    bus = max(t, bus) + moved * copy_ms
                    ready = max(ready, bus)
                # The split expert, when copied in anyway, takes its part
                # from the device: only the rest crosses the bus.
                bus = max(t, bus) + copy_ms * (1 - moved if i == j else 1)
                landed[key] = bus
                if i < j:
                    ready = max(ready, bus)
            if moved and j == len(kept):
                bus = max(t, bus) + moved * copy_ms
                ready = max(ready, bus)
            ready = max(ready, t + (hosted - moved) * host_ms)
            stall += ready - t
            t = ready
            copies += len(kept)
            on_host += hosted
    n = len(steps)
    return t / n, stall / n, copies / n, on_host / n


def belady(steps, slots):
    accesses = [(layer, used) for step in steps for layer, used in step]
    uses = {}
    for i, (layer, used) in enumerate(accesses):
        for e in used:
            uses.setdefault((layer, e), []).append(i)

    def next_use(key, i):
        times = uses[key]
        j = bisect.bisect_right(times, i)
        return times[j] if j < len(times) else float("inf")

    cache, loads, hits = set(), 0, 0
    for i, (layer, used) in enumerate(accesses):
        pinned = {(layer, e) for e in used}
        for key in sorted(pinned):
            if key in cache:
                hits += 1
                continue
            loads += 1
            if len(cache) >= slots:
                victim = max((x for x in cache if x not in pinned),
                             key=lambda x: next_use(x, i))
                cache.remove(victim)
            cache.add(key)
    return loads, hits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--slots", default="32,16")
    ap.add_argument("--batch", default="1:48,8:96", help="BATCH:WINDOW,...")
    ap.add_argument("--windows", type=int, default=8,
                    help="sequences of WINDOW tokens replayed (bench prefetch "
                         "--tokens WINDOWS x WINDOW)")
    ap.add_argument("--host-ms", default="",
                    help="also model misses on the host (expert_misses = auto): "
                         "comma-separated ms per expert on the host, e.g. 4.5,6.9")
    ap.add_argument("--copy-ms", type=float, default=6.7,
                    help="ms per expert copy, waits included (H100: 6.7)")
    ap.add_argument("--step-ms", type=float, default=2.93,
                    help="ms of a step without misses (H100, 8 layers: 2.93)")
    args = ap.parse_args()
    trace = json.load(open(args.trace))
    for shape in args.batch.split(","):
        batch, window = (int(x) for x in shape.split(":"))
        steps = steps_of(trace, args.layers, batch, window, args.windows)
        for slots in (int(s) for s in args.slots.split(",")):
            for name, policy in (("LRU", lru), ("learned", learned),
                                 ("Belady", belady)):
                loads, hits = policy(steps, slots)
                print(f"batch {batch}, {slots} slots, {name:7}: "
                      f"{loads / len(steps):6.2f} experts loaded per step, "
                      f"hit rate {hits / (hits + loads):.3f}")
            for host_ms in (float(x) for x in args.host_ms.split(",") if x):
                layer_ms = args.step_ms / args.layers
                for split in (False, True):
                    ms, stall, copies, on_host = host_misses(
                        steps, slots, args.copy_ms, host_ms, layer_ms, split)
                    name = "host+split" if split else "host"
                    print(f"batch {batch}, {slots} slots, {name} {host_ms} ms: "
                          f"{ms:.2f} ms per step ({1000 * batch / ms:.1f} tokens/s), "
                          f"stalls {stall:.2f} ms per step, {copies:.2f} copies and "
                          f"{on_host:.2f} experts on the host per step")


if __name__ == "__main__":
    main()
