#!/usr/bin/env bash
# Runs on the GPU machine (device tool) from the repository root with .device/
# carried (scripts/device_bundle.sh): experts on two GPUs in two processes over
# TCP, against one GPU. Writes a Mixtral-8x7B-shaped checkpoint (hidden 4096,
# 8 experts, top-2, random bf16 weights; the team's writer) and measures
#   (a) a standalone node on cuda:0;
#   (b) a router on cuda:0 and two workers hosting experts 0-3 and 4-7, one on
#       cuda:0 and one on cuda:1;
#   (c) the same with each worker hosting all 8 experts (replicas the router
#       balances), then kills one worker (SIGKILL) during a long decode.
# With one GPU visible both workers share cuda:0 (the protocol's overhead, not
# two GPUs' speed), and the output says so. Every run goes through
# `volt-node bench model --connect --metrics`: prefill tokens/s, decode
# ms/step, tensor bytes on the wire per token and layer and the share of the
# steps spent waiting for expert hosts, from the router's counters.
#   scripts/bench_two_gpus.sh [LAYERS]   (default 8)
# Prints one markdown table; under $OUT: two_gpus_table.md, two_gpus_{a,b,c}.json
# (bench model), two_gpus_kill.json, two_gpus_setup.txt, two_gpus_rss.txt
# (each node's peak host memory), each node's log and final /metrics.
# A dry run on the CPU with the test fixture (checks the script, no numbers):
#   VOLT_BENCH_MODEL=tests/data/tiny-mixtral-a VOLT_BENCH_DEVICE=cpu \
#   VOLT_NODE=build-cpu/apps/volt-node VOLT_BENCH_PROMPTS=64,256 \
#   scripts/bench_two_gpus.sh
# Other knobs: VOLT_BENCH_BATCHES (1,8,32), VOLT_BENCH_DECODE_PROMPT (128),
# VOLT_BENCH_NEW_TOKENS (64), VOLT_BENCH_KILL_TOKENS (400 per request, 4
# requests), VOLT_BENCH_DIR (where the checkpoint goes: /tmp/volt-mixtral, as
# for scripts/bench_model_gpu.sh; a whole one of LAYERS layers there is
# reused), VOLT_BENCH_BUDGET (seconds for the whole script, 510: what has not
# started by then is skipped and said so), VOLT_BENCH_BUSY_POLL_US (every
# node's [network] busy_poll_us, 0).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/volt-out}
mkdir -p "$OUT"
export LD_LIBRARY_PATH="$PWD/.device/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}"
node=${VOLT_NODE:-.device/bin/volt-node}
layers=${1:-8}
device=${VOLT_BENCH_DEVICE:-cuda}
prompts=${VOLT_BENCH_PROMPTS:-512,2048}
batches=${VOLT_BENCH_BATCHES:-1,8,32}
decode_prompt=${VOLT_BENCH_DECODE_PROMPT:-128}
new_tokens=${VOLT_BENCH_NEW_TOKENS:-64}
kill_tokens=${VOLT_BENCH_KILL_TOKENS:-400}
kill_clients=4
budget=${VOLT_BENCH_BUDGET:-510}
busy_poll=${VOLT_BENCH_BUSY_POLL_US:-0}
: >"$OUT/two_gpus_rss.txt"
work=$(mktemp -d /tmp/volt-2gpu-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
log() { echo "[+$((SECONDS))s] $*"; }
# Seconds of the budget left, at most $1.
left() {
  local l=$((budget - SECONDS))
  [ "$l" -gt "$1" ] && l=$1
  echo "$l"
}
[ -x "$node" ] || { echo "no volt-node at $node (run scripts/device_bundle.sh)"; exit 1; }

# -- where the nodes run ------------------------------------------------------
if [ "$device" = cpu ]; then
  gpus=0; d0=cpu; d1=cpu
  placement="DRY RUN on the CPU: every node on the CPU (no numbers to keep)"
else
  gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
  [ "$gpus" -ge 1 ] || { echo "no GPU visible (nvidia-smi -L)"; exit 1; }
  d0=cuda:0; d1=cuda:1
  placement="router on cuda:0; worker 1 on cuda:0, worker 2 on cuda:1"
  if [ "$gpus" -lt 2 ]; then
    d1=cuda:0
    placement="ONE GPU visible: router and both workers on cuda:0 (this measures the protocol's overhead, not two GPUs)"
  fi
fi
{
  date -u
  cat .device/commit 2>/dev/null || git rev-parse HEAD
  [ "$gpus" -gt 0 ] && nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv
  echo "GPUs visible: $gpus"
  echo "placement: $placement"
  echo "[network] busy_poll_us: $busy_poll"
} >"$OUT/two_gpus_setup.txt" 2>&1
cat "$OUT/two_gpus_setup.txt"

# -- the checkpoint -----------------------------------------------------------
if [ -n "${VOLT_BENCH_MODEL:-}" ]; then
  model=$VOLT_BENCH_MODEL
else
  # The folder scripts/bench_model_gpu.sh writes to: its checkpoint is reused.
  model=${VOLT_BENCH_DIR:-/tmp/volt-mixtral}/L$layers
  # The writer saves the index last: with it, the checkpoint is whole.
  if grep -q "\"num_hidden_layers\": $layers," "$model/config.json" 2>/dev/null \
     && [ -f "$model/model.safetensors.index.json" ]; then
    log "reusing the checkpoint in $model"
  else
    log "writing a Mixtral-8x7B-shaped checkpoint of $layers layers to $model"
    rm -rf "$model"
    # The writer also times transformers' decode (8 tokens) on it.
    if ! PYTHONUNBUFFERED=1 timeout "$(left 300)" python3 .device/tools/mixtral_shape_checkpoint.py \
         "$model" "$layers" 32 8 >"$OUT/hf_L$layers.json" 2>"$OUT/hf_L$layers.err"; then
      echo "the checkpoint writer failed:"; tail -n 5 "$OUT/hf_L$layers.err"; exit 1
    fi
  fi
fi
vocab=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['vocab_size'])" "$model/config.json")
experts=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['num_local_experts'])" "$model/config.json")
half=$((experts / 2))
all_ids=$(seq -s, 0 $((experts - 1)))
low_ids=$(seq -s, 0 $((half - 1)))
high_ids=$(seq -s, "$half" $((experts - 1)))

# -- node configuration -------------------------------------------------------
max_of() { tr ',' '\n' <<<"$1" | sort -n | tail -n1; }
max_batch=$(max_of "$batches")
[ "$max_batch" -lt "$kill_clients" ] && max_batch=$kill_clients
chunk=$(max_of "$prompts")
longest=$(max_of "$chunk,$((decode_prompt + new_tokens)),$((decode_prompt + kill_tokens))")
# Every request of the largest batch at the longest length, in pages of 16
# tokens: a pool sized so, not by free device memory, leaves the workers'
# share of a GPU alone and is the same in every configuration.
pages=$((max_batch * (longest / 16 + 2)))
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
# write_toml NAME ROLE PORT METRICS_PORT MODEL_LINES MORE_SECTIONS
write_toml() {
  cat >"$work/$1.toml" <<TOML
[node]
id = "$1"
role = "$2"
[network]
host = "127.0.0.1"
port = $3
busy_poll_us = $busy_poll
[model]
path = "$model"
$5
[metrics]
port = $4
[kv_cache]
num_pages = $pages
[engine]
max_batch = $max_batch
max_queue = $((2 * max_batch))
prefill_chunk = $chunk
[security]
insecure = true
$6
TOML
}
# start NAME: runs the node of $work/NAME.toml; its pid goes to pid_NAME.
start() {
  "$node" --config "$work/$1.toml" 2>"$OUT/two_gpus_$1.log" &
  pids+=($!)
  printf -v "pid_$1" '%s' $!
}
# ready NAME...: waits for each node's "ready: " line (a router's comes once
# every expert has a live host).
ready() {
  local name pid deadline=$((SECONDS + $(left 300)))
  for name in "$@"; do
    pid=pid_$name
    until grep -q "ready: " "$OUT/two_gpus_$name.log"; do
      if ! kill -0 "${!pid}" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        echo "node $name did not come up:"; tail -n 5 "$OUT/two_gpus_$name.log"; return 1
      fi
      sleep 0.2
    done
  done
}
scrape() { # PORT FILE
  python3 -c "import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(
    'http://127.0.0.1:' + sys.argv[1] + '/metrics', timeout=10).read().decode())" "$1" >"$2" 2>/dev/null
}
# stop NAME...: notes each node's peak host memory (VmHWM, MiB) in
# two_gpus_rss.txt, then SIGTERM, then SIGKILL after 20 s.
stop() {
  local name pid kib
  for name in "$@"; do
    pid=pid_$name
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/${!pid}/status" 2>/dev/null)
    [ -n "$kib" ] && echo "$name $((kib / 1024))" >>"$OUT/two_gpus_rss.txt"
  done
  for name in "$@"; do pid=pid_$name; kill "${!pid}" 2>/dev/null; done
  for name in "$@"; do
    pid=pid_$name
    for _ in $(seq 100); do kill -0 "${!pid}" 2>/dev/null || break; sleep 0.2; done
    kill -9 "${!pid}" 2>/dev/null
    wait "${!pid}" 2>/dev/null
  done
}
# bench CONFIG ROUTER_PORT METRICS_PORT: bench model against the node.
bench() {
  local t; t=$(left 240)
  [ "$t" -gt 30 ] || { echo "($1) skipped: the time budget is spent"; return 1; }
  log "($1) bench model"
  if ! timeout "$t" "$node" bench model --model "$model" --connect "127.0.0.1:$2" \
       --metrics "127.0.0.1:$3" --wait-seconds "$(left 200)" --batch "$batches" \
       --prompt "$prompts" --decode-prompt "$decode_prompt" --new-tokens "$new_tokens" \
       --json >"$OUT/two_gpus_$1.json" 2>"$OUT/two_gpus_$1_bench.err"; then
    echo "($1) bench model failed:"; tail -n 5 "$OUT/two_gpus_$1_bench.err"
    rm -f "$OUT/two_gpus_$1.json"
    return 1
  fi
}

# -- (a) one GPU --------------------------------------------------------------
read -r port mport < <(free_ports 2)
write_toml a standalone "$port" "$mport" "device = \"$d0\"" ""
log "(a) standalone on $d0"
start a
ready a && bench a "$port" "$mport"
scrape "$mport" "$OUT/two_gpus_a_metrics.txt"
stop a

# -- (b) and (c): a router and two workers ------------------------------------
# cluster CONFIG EXPERTS_OF_W1 EXPERTS_OF_W2: starts CONFIG_w1, CONFIG_w2 and
# CONFIG_router; sets rport and rmport.
cluster() {
  local w1 w1m w2 w2m
  read -r w1 w1m w2 w2m rport rmport < <(free_ports 6)
  write_toml "$1_w1" worker "$w1" "$w1m" "" "[worker]
experts = [$2]
device = \"$d0\""
  write_toml "$1_w2" worker "$w2" "$w2m" "" "[worker]
experts = [$3]
device = \"$d1\""
  write_toml "$1_router" router "$rport" "$rmport" "device = \"$d0\"" "[router]
workers = [\"127.0.0.1:$w1\", \"127.0.0.1:$w2\"]"
  eval "$1_worker_metrics=\"$w1m $w2m\""
  start "$1_w1"; start "$1_w2"; start "$1_router"
  ready "$1_w1" "$1_w2" "$1_router"
}
# save_metrics CONFIG: the router's and workers' counters at the end.
save_metrics() {
  local m i=1 ports=$1_worker_metrics
  scrape "$rmport" "$OUT/two_gpus_$1_router_metrics.txt"
  for m in ${!ports}; do scrape "$m" "$OUT/two_gpus_$1_w${i}_metrics.txt"; i=$((i + 1)); done
}

log "(b) router on $d0, experts $low_ids on $d0 and $high_ids on $d1"
cluster b "$low_ids" "$high_ids" && bench b "$rport" "$rmport"
save_metrics b
stop b_router b_w1 b_w2

log "(c) router on $d0, all experts on $d0 and on $d1 (replicas)"
if cluster c "$all_ids" "$all_ids"; then
  bench c "$rport" "$rmport"
  t=$(left 120)
  if [ "$t" -gt 20 ]; then
    log "(c) $kill_clients streamed requests of $kill_tokens tokens; SIGKILL to worker 2 mid-decode"
    timeout "$t" python3 - "$node" "$rport" "$rmport" "$pid_c_w2" "$decode_prompt" \
      "$kill_tokens" "$kill_clients" "$vocab" "$OUT/two_gpus_kill.json" <<'PY'
# Streams several requests from the router, kills a worker once the first has
# a quarter of its tokens, and times each token's arrival: no request may
# fail, and the longest gap after the kill against the usual gap is the time
# the router took to notice and re-send the dead worker's rows to the replica.
import json, os, re, signal, statistics, subprocess, sys, threading, time, urllib.request
node, rport, mport, victim, plen, ntok, nclients, vocab, out = sys.argv[1:10]
plen, ntok, nclients, vocab = int(plen), int(ntok), int(nclients), int(vocab)
def counter(name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read().decode()
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines()
               if l.startswith(name + "{") or l.startswith(name + " "))
failovers_before = counter("voltinfer_failovers_total")
token_line = re.compile(r"^sequence 0: -?\d+$")
arrivals = [[] for _ in range(nclients)]
killed_at = []
lock = threading.Lock()
def client(i):
    prompt = ",".join(str((j * 37 + 11 + 101 * i) % vocab) for j in range(plen))
    p = subprocess.Popen([node, "generate", "--connect", f"127.0.0.1:{rport}", "--prompt-ids", prompt,
                          "--max-new-tokens", str(ntok), "--ignore-eos", "--stream", "--wait-seconds", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in p.stdout:
        if token_line.match(line.strip()):
            arrivals[i].append(time.monotonic())
            with lock:
                if not killed_at and len(arrivals[i]) >= ntok // 4:
                    os.kill(int(victim), signal.SIGKILL)
                    killed_at.append(time.monotonic())
    results[i] = {"exit_code": p.wait(), "tokens": len(arrivals[i]), "stderr": p.stderr.read().strip()[-300:]}
results = [None] * nclients
threads = [threading.Thread(target=client, args=(i,)) for i in range(nclients)]
for t in threads: t.start()
for t in threads: t.join()
report = {"clients": nclients, "tokens_per_request": ntok, "killed": bool(killed_at), "requests": results}
if killed_at:
    k = killed_at[0]
    before, after = [], []
    for a in arrivals:
        for x, y in zip(a, a[1:]):
            (before if y <= k else after).append(y - x)
    usual = statistics.median(before) if before else 0.0
    worst = max(after) if after else 0.0
    report.update({"usual_gap_ms": round(usual * 1e3, 3), "longest_gap_after_kill_ms": round(worst * 1e3, 3),
                   "recovery_ms": round((worst - usual) * 1e3, 3),
                   "failovers": counter("voltinfer_failovers_total") - failovers_before,
                   "live_workers_after": counter("voltinfer_live_workers")})
report["failed_requests"] = sum(1 for r in results if r["exit_code"] != 0 or r["tokens"] != ntok)
json.dump(report, open(out, "w"), indent=1)
print(json.dumps({k: v for k, v in report.items() if k != "requests"}))
PY
    [ $? -eq 124 ] && echo '{"timed_out": true}' >"$OUT/two_gpus_kill.json"
  else
    echo "(c) kill run skipped: the time budget is spent"
  fi
fi
save_metrics c
stop c_router c_w1 c_w2

# -- the table ----------------------------------------------------------------
python3 - "$OUT" "$placement" "$gpus" <<'PY' | tee "$OUT/two_gpus_table.md"
import json, os, sys
out, placement, gpus = sys.argv[1], sys.argv[2], int(sys.argv[3])
def load(name):
    path = os.path.join(out, name)
    return json.load(open(path)) if os.path.exists(path) else None
runs = {c: load(f"two_gpus_{c}.json") for c in "abc"}
rss_path = os.path.join(out, "two_gpus_rss.txt")
rss = [l.split() for l in open(rss_path)] if os.path.exists(rss_path) else []
kill = load("two_gpus_kill.json")
def prefill(run, n, key="tokens_per_second"):
    for r in (run or {}).get("prefill", []):
        if r["tokens"] == n: return r.get(key)
def decode(run, b, key="step_ms"):
    for r in (run or {}).get("decode", []):
        if r["batch"] == b: return r.get(key)
def fmt(x, digits=1):
    if x is None: return "n/a"
    return f"{x:,.{digits}f}"
two = "" if gpus >= 2 else " (both workers on cuda:0)" if gpus == 1 else " (CPU dry run)"
print(f"Placement: {placement}\n")
one = "1 GPU" if gpus else "CPU"
print(f"| measure | (a) {one} standalone | (b) router + 2 workers, 4 experts each{two} | (c) router + 2 replica workers, 8 experts each{two} | (b)/(a) |")
print("| --- | ---: | ---: | ---: | ---: |")
def row(label, get, digits=1, ratio=True):
    vals = [get(runs[c]) for c in "abc"]
    r = fmt(vals[1] / vals[0], 2) + "x" if ratio and vals[0] and vals[1] else ""
    print(f"| {label} | " + " | ".join(fmt(v, digits) for v in vals) + f" | {r} |")
prompts = [r["tokens"] for r in (runs["a"] or runs["b"] or runs["c"] or {}).get("prefill", [])]
batches = [r["batch"] for r in (runs["a"] or runs["b"] or runs["c"] or {}).get("decode", [])]
for n in prompts:
    row(f"prefill {n} tokens: tokens/s", lambda r, n=n: prefill(r, n), 0)
for b in batches:
    row(f"decode batch {b}: ms/step", lambda r, b=b: decode(r, b), 3)
for b in batches:
    row(f"decode batch {b}: tokens/s", lambda r, b=b: b * 1e3 / decode(r, b) if decode(r, b) else None, 0)
for n in prompts:
    row(f"prefill {n}: wire bytes per token per layer", lambda r, n=n: prefill(r, n, "wire_bytes_per_token_layer"), 0, False)
for b in batches:
    row(f"decode batch {b}: wire bytes per token per layer", lambda r, b=b: decode(r, b, "wire_bytes_per_token_layer"), 0, False)
for n in prompts:
    row(f"prefill {n}: share of step waiting for expert hosts", lambda r, n=n: prefill(r, n, "expert_wait_share"), 3, False)
for b in batches:
    row(f"decode batch {b}: share of step waiting for expert hosts", lambda r, b=b: decode(r, b, "expert_wait_share"), 3, False)
print()
a, b = runs["a"], runs["b"]
def target(text, ratio, ok):
    if ratio is None:
        print(f"- {text}: n/a")
    else:
        print(f"- {text}: {ratio:.2f}x, " + ("met" if ok(ratio) else "MISSED"))
longest = max(prompts) if prompts else 2048
p_a, p_b = prefill(a, longest), prefill(b, longest)
target(f"(b) prefill {longest} tokens/s >= 1.7x (a)", p_b / p_a if p_a and p_b else None, lambda r: r >= 1.7)
d_a, d_b = decode(a, 1), decode(b, 1)
target("(b) decode batch 1 ms/step <= 1.3x (a)", d_b / d_a if d_a and d_b else None, lambda r: r <= 1.3)
t_a, t_b = decode(a, 32), decode(b, 32)
target("(b) decode batch 32 tokens/s >= (a)", t_a / t_b if t_a and t_b else None, lambda r: r >= 1.0)
if gpus == 1:
    print("- one GPU: (b) and (c) share cuda:0 with the router, so the targets above do not apply;"
          " (b)/(a) is the protocol's overhead")
elif gpus == 0:
    print("- CPU dry run: the script works; its numbers mean nothing")
if kill:
    if kill.get("timed_out"):
        print("- (c) kill run: TIMED OUT (streamed requests still open when its time ran out)")
    elif kill.get("killed"):
        print(f"- (c) SIGKILL to worker 2 during {kill['clients']} streamed requests of "
              f"{kill['tokens_per_request']} tokens: {kill['failed_requests']} failed; longest gap in token "
              f"arrival after the kill {kill['longest_gap_after_kill_ms']} ms against a usual "
              f"{kill['usual_gap_ms']} ms (recovery {kill['recovery_ms']} ms); "
              f"{int(kill['failovers'])} expert batches re-sent; live workers after: {int(kill['live_workers_after'])}")
    else:
        print("- (c) kill run: the requests ended before the kill (raise VOLT_BENCH_KILL_TOKENS)")
else:
    print("- (c) kill run: not done")
if rss:
    print("- peak host memory (VmHWM) of each node: " + ", ".join(f"{n} {int(m):,} MiB" for n, m in rss))
PY
log "done; files under $OUT"
