"""Closed-loop load on an OpenAI-compatible server: C clients, each sending its next request as
soon as the last one is answered, until R requests are done (bounded in count and time).

Usage: serve_load.py BASE_URL MODEL CONCURRENCY REQUESTS MAX_TOKENS [TIMEOUT_S]
Prints one JSON line: concurrency, requests, errors, completion tokens, wall seconds, aggregate
tokens/s, p50/p99 request latency (s). Only the standard library; loopback only.
"""
import json
import sys
import threading
import time
import urllib.request

base, model = sys.argv[1].rstrip("/"), sys.argv[2]
concurrency, total, max_tokens = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
deadline = time.monotonic() + (float(sys.argv[6]) if len(sys.argv) > 6 else 900)
assert base.startswith("http://127.0.0.1") or base.startswith("http://localhost"), "loopback only"

PROMPTS = [
    "Write a short story about a lighthouse keeper.",
    "Explain how a bicycle works.",
    "Describe the water cycle to a child.",
    "List some facts about the moon and explain each one.",
    "Write a letter to a friend about a trip to the mountains.",
    "Explain why the sky is blue.",
    "Describe a busy market in the morning.",
    "Tell me about the history of bread.",
]

lock = threading.Lock()
next_index = [0]
latencies, tokens, errors = [], [0], [0]


def worker():
    while time.monotonic() < deadline:
        with lock:
            i = next_index[0]
            if i >= total:
                return
            next_index[0] += 1
        body = json.dumps({"model": model, "max_tokens": max_tokens, "temperature": 0,
                           "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]}).encode()
        req = urllib.request.Request(base + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"})
        t0 = time.monotonic()
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                reply = json.load(r)
            dt = time.monotonic() - t0
            with lock:
                latencies.append(dt)
                tokens[0] += reply["usage"]["completion_tokens"]
        except Exception as e:  # noqa: BLE001 — counted, reported
            with lock:
                errors[0] += 1
            print(f"request failed: {e}", file=sys.stderr)


start = time.monotonic()
threads = [threading.Thread(target=worker) for _ in range(concurrency)]
for t in threads:
    t.start()
for t in threads:
    t.join()
wall = time.monotonic() - start
lat = sorted(latencies)


def pct(p):
    if not lat:
        return float("nan")
    k = min(len(lat) - 1, max(0, int(round(p / 100 * len(lat) + 0.5)) - 1))
    return lat[k]


print(json.dumps({"concurrency": concurrency, "requests": len(lat), "errors": errors[0], "completion_tokens": tokens[0],
                  "wall_s": round(wall, 3), "tokens_per_s": round(tokens[0] / wall, 2) if wall > 0 else 0,
                  "p50_s": round(pct(50), 3), "p99_s": round(pct(99), 3)}))
