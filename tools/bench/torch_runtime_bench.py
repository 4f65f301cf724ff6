"""Side-by-side reference for `assay bench runtime`: the same checkpoint, image and prompt length
through transformers on the CPU with the same thread count."""
import argparse, json, resource, time
import numpy as np, torch
from PIL import Image
from tokenizers import Tokenizer
from transformers import AutoModelForImageTextToText, LogitsProcessor, LogitsProcessorList
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

ap = argparse.ArgumentParser()
ap.add_argument("--model-path", required=True); ap.add_argument("--image")
ap.add_argument("--prompt-tokens", type=int, default=128); ap.add_argument("--gen-tokens", type=int, default=16)
ap.add_argument("--threads", type=int, default=2); ap.add_argument("--dtype", default="bfloat16")
a = ap.parse_args()
torch.set_num_threads(a.threads)
t = time.time()
model = AutoModelForImageTextToText.from_pretrained(a.model_path, dtype=getattr(torch, a.dtype)).eval()
print(f"load {time.time()-t:.1f}s dtype {a.dtype} threads {torch.get_num_threads()}")
cfg = json.load(open(a.model_path + "/config.json"))
tok = Tokenizer.from_file(a.model_path + "/tokenizer.json")
filler = "The quick brown fox jumps over the lazy dog while the chart shows a rising trend. " * (a.prompt_tokens // 8 + 2)
text_ids = tok.encode(filler).ids[:a.prompt_tokens]
head = tok.encode("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n").ids
tail = tok.encode("<|im_end|>\n<|im_start|>assistant\n").ids
kw = {}
ids = head
if a.image:
    proc = Qwen2VLImageProcessorPil(min_pixels=3136, max_pixels=12845056)
    pv = proc(images=[Image.open(a.image).convert("RGB")], return_tensors="pt")
    grid = pv["image_grid_thw"]
    n = int(grid.prod()) // 4
    ids = ids + [cfg["vision_start_token_id"]] + [cfg["image_token_id"]] * n + [cfg["vision_end_token_id"]]
    kw = dict(pixel_values=pv["pixel_values"].to(model.dtype), image_grid_thw=grid)
ids = ids + text_ids + tail
input_ids = torch.tensor([ids])
marks = []
class Clock(LogitsProcessor):
    def __call__(self, input_ids, scores):
        marks.append(time.time()); return scores
vis = {}
def pre(m, args, kwargs): vis["t0"] = time.time()
def post(m, args, kwargs, out): vis["t1"] = time.time()
model.model.visual.register_forward_pre_hook(pre, with_kwargs=True)
model.model.visual.register_forward_hook(post, with_kwargs=True)
t0 = time.time()
with torch.inference_mode():
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **kw, do_sample=False,
                         max_new_tokens=a.gen_tokens, min_new_tokens=a.gen_tokens, logits_processor=LogitsProcessorList([Clock()]))
vision = vis.get("t1", 0) - vis.get("t0", 0)
prefill = marks[0] - t0 - vision
decode = marks[-1] - marks[0]
print(f"vision {vision:.3f}s per image" if a.image else "no image")
print(f"prefill {len(ids)} tokens in {prefill:.3f}s = {len(ids)/prefill:.2f} tok/s")
print(f"first token {marks[0]-t0:.3f}s")
print(f"decode {len(marks)-1} tokens in {decode:.3f}s = {(len(marks)-1)/decode:.2f} tok/s")
print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1e6:.2f} GB")
