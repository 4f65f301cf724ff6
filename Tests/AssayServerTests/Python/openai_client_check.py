"""Drives `assay serve` with the official `openai` client and prints what it saw as JSON.

Usage: openai_client_check.py BASE_URL MODEL IMAGE_PNG
The Swift test (OpenAIClientTests) compares the output with the runtime's own answers.
"""
import base64
import json
import sys

from openai import OpenAI

base_url, model, image_path = sys.argv[1], sys.argv[2], sys.argv[3]
client = OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=120)
out = {}

chat = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Name a fruit."}], max_tokens=12, temperature=0)
out["chat"] = {"text": chat.choices[0].message.content, "finish_reason": chat.choices[0].finish_reason,
               "prompt_tokens": chat.usage.prompt_tokens, "completion_tokens": chat.usage.completion_tokens,
               "object": chat.object}

stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Name a fruit."}], max_tokens=12, temperature=0,
    stream=True, stream_options={"include_usage": True})
text, finish, usage, chunks = "", None, None, 0
for chunk in stream:
    chunks += 1
    if chunk.usage is not None:
        usage = {"prompt_tokens": chunk.usage.prompt_tokens, "completion_tokens": chunk.usage.completion_tokens}
    for choice in chunk.choices:
        text += choice.delta.content or ""
        finish = choice.finish_reason or finish
out["stream"] = {"text": text, "finish_reason": finish, "usage": usage, "chunks": chunks}

many = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Pick a word."}], max_tokens=8, temperature=1, seed=42, n=3)
out["n"] = [c.message.content for c in sorted(many.choices, key=lambda c: c.index)]

lp = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=5, temperature=0, logprobs=True, top_logprobs=3)
out["logprobs"] = [{"token": t.token, "logprob": t.logprob, "top": [a.token for a in t.top_logprobs]}
                   for t in lp.choices[0].logprobs.content]

with open(image_path, "rb") as f:
    url = "data:image/png;base64," + base64.b64encode(f.read()).decode()
img = client.chat.completions.create(
    model=model, max_tokens=6, temperature=0,
    messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                            {"type": "text", "text": "What is in the picture?"}]}])
out["image"] = {"text": img.choices[0].message.content, "prompt_tokens": img.usage.prompt_tokens}

models = client.models.list()
out["models"] = [m.id for m in models.data]

try:
    client.chat.completions.create(model=model, messages=[], max_tokens=1)
    out["error"] = None
except Exception as e:  # openai.BadRequestError
    out["error"] = {"type": type(e).__name__, "status": getattr(e, "status_code", None), "message": str(e)}

print(json.dumps(out))
