"""Prefill and decode speed of llama.cpp (through llama-cpp-python) on a GGUF, measured the way
`assay bench runtime` measures Assay: the same filler prompt cut to P tokens, one prefill, then G
greedy decode steps with EOS ignored, each step one token through `Llama.eval`.

    python llama_cpp_decode.py MODEL.gguf [PROMPT_TOKENS] [GEN_TOKENS] [THREADS]

Prints one line: {"prefill_tok_s": …, "decode_tok_s": …, "system_info": …} (JSON).
"""
import json
import sys
import time

import llama_cpp
import numpy as np

path = sys.argv[1]
prompt_tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 256
gen_tokens = int(sys.argv[3]) if len(sys.argv) > 3 else 128
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2

llm = llama_cpp.Llama(model_path=path, n_ctx=prompt_tokens + gen_tokens + 8, n_batch=512, n_threads=threads,
                      n_threads_batch=threads, logits_all=False, verbose=False)
filler = "The quick brown fox jumps over the lazy dog while the chart shows a rising trend. " * (prompt_tokens // 8 + 2)
ids = llm.tokenize(filler.encode(), add_bos=False)[:prompt_tokens]

llm.reset()
start = time.perf_counter()
llm.eval(ids)
prefill = time.perf_counter() - start
token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
start = time.perf_counter()
for _ in range(gen_tokens):
    llm.eval([token])
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
decode = time.perf_counter() - start
print(json.dumps({"prefill_tok_s": len(ids) / prefill, "decode_tok_s": gen_tokens / decode,
                  "llama_cpp_python": llama_cpp.__version__,
                  "system_info": llama_cpp.llama_print_system_info().decode(errors="replace").strip()}))
