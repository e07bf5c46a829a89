"""Rollout throughput: generated tokens/s of the embedded policy, batched groups vs one completion at a time.

The GRPO step samples G completions for each of P prompts. ``Policy.generate(prompts, images,
num_generations=G)`` encodes the P prompts once, repeats them G times and samples all P*G rows in one
batched ``generate`` with the KV cache. The naive alternative calls ``generate`` once per completion
(P*G calls of one row each, KV cache on). ``--uncached`` adds the batched call with the KV cache off.
Every completion is forced to exactly ``--tokens`` tokens (``min_new_tokens = max_new_tokens`` on the
model's generation config), so all sides generate the same number of tokens.

    python benchmarks/rollout.py                      # P=8 prompts x G=8, 64 tokens, 1 thread
    python benchmarks/rollout.py --tokens 32 --uncached --rounds 2
    python benchmarks/rollout.py --smoke              # 2 x 2 of 4 tokens, every side: checks the script runs

One torch thread by default: on 2 cores shared with other jobs, OpenMP threads spin-waiting for a
busy core inflate 2-thread timings by up to 10x and make them unrepeatable.
"""

from __future__ import annotations

import argparse

import torch
from _common import alternating, machine, parse_args, table

from perception_r1.data.prepare import prepare_sample
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.model.policy import Policy
from perception_r1.registry import get_registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--task", default="counting")
    parser.add_argument("--uncached", action="store_true", help="also run the batched call without KV cache")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--rounds", type=int, default=1, help="run the sides in turn this many times; fastest counts")
    args = parse_args(parser, {"prompts": 2, "group": 2, "tokens": 4, "uncached": True})
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    policy = Policy.load(None)
    n_params = sum(p.numel() for p in policy.model.parameters())
    task = get_registry().task(args.task)
    samples = [prepare_sample(s, policy, task) for s in synthetic_samples(task, "train", args.prompts, seed=0)]
    prompts = [task.prompt(s) for s in samples]
    images = [s["image"] for s in samples]
    policy.generate(prompts[:1], images[:1], num_generations=2, max_new_tokens=4)  # warm-up
    gen_config = policy.model.generation_config
    gen_config.min_new_tokens = args.tokens  # no early EOS: every side generates the same tokens
    prompt_len = policy.encode_prompts(prompts[:1], images[:1])["input_ids"].shape[1]
    P, G, T = args.prompts, args.group, args.tokens
    print(f"policy {policy.name}: {n_params / 1e6:.2f}M parameters; task {task.name}; prompt {prompt_len} tokens "
          f"(image included); {P} prompts x G={G}, {T} new tokens each\n")

    def batched() -> int:
        rollout = policy.generate(prompts, images, num_generations=G, max_new_tokens=T)
        return int(rollout.completion_mask.sum())

    def naive() -> int:
        total = 0
        for prompt, image in zip(prompts, images, strict=True):
            for _ in range(G):
                rollout = policy.generate([prompt], [image], num_generations=1, max_new_tokens=T)
                total += int(rollout.completion_mask.sum())
        return total

    def uncached() -> int:
        gen_config.use_cache = False
        try:
            return batched()
        finally:
            gen_config.use_cache = True

    sides = {"batched G completions, KV cache": batched, "one completion per call, KV cache": naive}
    if args.uncached:
        sides["batched G completions, no KV cache"] = uncached
    results = alternating(sides, args.rounds)  # in turn, so load from other users of the cores hits every side
    base_s, base_tokens = results["one completion per call, KV cache"]
    rows = []
    for name, (seconds, tokens) in results.items():
        rate = tokens / seconds
        rows.append([name, tokens, f"{seconds:.2f}", f"{rate:,.0f}", f"{rate / (base_tokens / base_s):.2f}x"])
    print(table(["generation", "tokens", "seconds", "tokens/s", "vs one-at-a-time"], rows))
    batched_s, batched_tokens = results["batched G completions, KV cache"]
    assert batched_tokens == base_tokens == P * G * T, "forced length did not hold"
    print(f"\nbatched sampling of G={G}: {base_s / batched_s:.1f}x the tokens/s of one completion per call")


if __name__ == "__main__":
    main()
