"""PyTorch side of scripts/compare_torch.sh: the same three workloads as `crossdiff bench lm`
on the same model folder, then a table of both figures and the ratios.

    python compare_torch.py CROSSDIFF_JSON [--threads N]

CROSSDIFF_JSON holds one `crossdiff bench lm` result per line (one per model shape); each is
measured and printed in turn, then all ratios side by side.
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("crossdiff_json")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with open(args.crossdiff_json) as f:
        results = [json.loads(line) for line in f if line.strip()]
    summary = [compare(ours, args.threads) for ours in results]
    print(f"\nall shapes, {args.threads} threads")
    print(f"{'shape':<8}{'workload':<10}{'crossdiff tok/s':>17}{'pytorch tok/s':>15}{'ratio':>8}")
    for case, rows in summary:
        for name, a, p in rows:
            print(f"{case:<8}{name:<10}{a:>17.0f}{p:>15.0f}{a / p:>8.2f}")


def compare(ours, threads):
    spec = ours["spec"]
    torch.set_num_threads(threads)
    torch.manual_seed(7)

    folder = ours["model_dir"]
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    vocab = model.config.vocab_size

    # Interop: the same logits from the same folder, and the chat template renders.
    with torch.no_grad():
        probe = model(torch.tensor([ours["probe_ids"]])).logits[0, -1, :32]
    worst = (probe - torch.tensor(ours["probe_logits"])).abs().max().item()
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True
    )
    print(f"transformers reads the folder: {model.num_parameters()} parameters, "
          f"largest logit difference {worst:.2e}, chat template renders {chat!r}")

    b, t = spec["batch"], spec["seq_len"]
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(3, vocab, (b, t), generator=gen)
    labels = ids.clone()
    labels[:, : t // 2] = -100  # loss on the response half only, as crossdiff's batch

    # Training: AdamW (betas 0.9/0.99, weight decay 0.1), clipping, full fine-tuning.
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.99), weight_decay=0.1)

    def train_step():
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    train_step()
    start = time.perf_counter()
    for _ in range(spec["train_steps"]):
        train_step()
    train = spec["train_steps"] * b * t / (time.perf_counter() - start)

    # Scoring: forward over (batch x seq_len) and the log-likelihood of the last quarter.
    model.eval()
    full = torch.randint(3, vocab, (b, t + 1), generator=gen)
    cut = t * 3 // 4

    def score():
        with torch.no_grad():
            logp = torch.log_softmax(model(full[:, :-1]).logits.float(), -1)
            target = full[:, 1:]
            ll = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)[:, cut - 1:].sum(-1)
        return ll

    score()
    start = time.perf_counter()
    for _ in range(spec["score_batches"]):
        score()
    scored = spec["score_batches"] * b * t / (time.perf_counter() - start)

    # Generation: greedy with the KV cache, prompts of 64 tokens, no early end.
    prompts = torch.randint(3, vocab, (spec["generate_prompts"], 64), generator=gen)
    new = spec["new_tokens"]
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new,
                             min_new_tokens=new, do_sample=False, use_cache=True, pad_token_id=0)
    generated = (out.shape[1] - 64) * out.shape[0]
    generate = generated / (time.perf_counter() - start)

    rows = [("train", ours["train_tokens_per_s"], train),
            ("score", ours["score_tokens_per_s"], scored),
            ("generate", ours["generate_tokens_per_s"], generate)]
    case = ours.get("case", "5m")
    print(f"\n{case}: {ours['parameters']} parameters, vocabulary {vocab}, {threads} threads, "
          f"torch {torch.__version__}")
    print(f"{'workload':<10}{'crossdiff tok/s':>17}{'pytorch tok/s':>15}{'ratio':>8}")
    for name, a, p in rows:
        print(f"{name:<10}{a:>17.0f}{p:>15.0f}{a / p:>8.2f}")
    return case, rows


if __name__ == "__main__":
    main()
