"""GRPO with TRL's GRPOTrainer on one of our tasks, through perception_r1.integrations.trl.

Trains the embedded tiny base (CPU, a few minutes) on a task's synthetic data with the task's own reward, and
prints the mean held-out reward of greedy answers (and the task's primary metric) before and after:

    pip install -e '.[trl]'
    python examples/trl_grpo.py                         # grounding, the task's small-model RL settings
    python examples/trl_grpo.py --task text-spotting    # a plugin task: pip install -e plugins/text-spotting

The embedded base was never taught text-spotting's answer format, so every reward is 0 and GRPO has nothing to
compare: teach the format first (`perception-r1 sft --task text-spotting --out SFT`), then `--model SFT`.

On a GPU with a real model, the same script with `--model /path/to/Qwen2.5-VL-3B-Instruct --vllm` samples
with vLLM (TRL's `use_vllm=True`, colocated with training); the answer space follows the model's family.
"""

from __future__ import annotations

import argparse
import time

from perception_r1.evaluate.scoring import score_records
from perception_r1.integrations import trl as pr1
from perception_r1.integrations.common import sample_from_ground_truth
from perception_r1.model.policy import DEFAULT_MODEL, Policy
from perception_r1.registry import get_registry


def held_out(policy: Policy, data, funcs, max_new_tokens: int) -> tuple[float, float, str]:
    """Greedy answers to the held-out prompts, scored by the same reward functions TRL trains on."""
    task = get_registry().task(funcs[0].__name__)
    samples = [sample_from_ground_truth(t) for t in data["ground_truth"]]
    texts: list[str] = []
    for start in range(0, len(samples), 32):
        batch = data[start:start + 32]
        prompts = [task.prompt(s) for s in samples[start:start + 32]]
        texts += policy.generate(prompts, batch["image"], num_generations=1, max_new_tokens=max_new_tokens,
                                 greedy=True).texts
    rewards = [sum(f(prompts=None, completions=[t], ground_truth=[g])[0] or 0.0 for f in funcs)
               for t, g in zip(texts, data["ground_truth"], strict=True)]
    _, metrics = score_records(task, [{**s, "completion": t} for s, t in zip(samples, texts, strict=True)])
    return sum(rewards) / len(rewards), metrics[task.primary_metric], task.primary_metric


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="grounding")
    parser.add_argument("--model", default=str(DEFAULT_MODEL), help="model directory (default: the embedded base)")
    parser.add_argument("--steps", type=int, help="GRPO steps (default: the task's tiny_run_defaults)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the task's tiny_run_defaults)")
    parser.add_argument("--eval-samples", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps shared cores fast)")
    parser.add_argument("--vllm", action="store_true", help="GPU only: sample with vLLM (TRL's use_vllm=True)")
    parser.add_argument("--out", default="runs/trl-grpo")
    args = parser.parse_args()

    import torch
    import transformers

    try:
        from trl import GRPOConfig, GRPOTrainer
    except ImportError:
        raise SystemExit("examples/trl_grpo.py needs TRL: pip install -e '.[trl]'") from None

    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    task = get_registry().task(args.task)
    # the task's small-model RL settings (README: "The task's settings"), but fewer steps at a higher learning
    # rate than `perception-r1 run` takes (grounding: 120 at 2e-5), so the example ends within 5 minutes on 2 cores
    tiny = {"prompts_per_step": 8, "max_new_tokens": 160, "temperature": 0.7, "scale_rewards": True,
            **task.tiny_run_defaults, "steps": 28, "learning_rate": 5e-5}
    steps, prompts, group, tokens = args.steps or tiny["steps"], tiny["prompts_per_step"], 8, tiny["max_new_tokens"]

    policy = Policy.load(args.model)
    family = args.model  # a model directory: its family gives the answer space (and Qwen2.5-VL's resize rule)
    train = pr1.dataset(task, model_family=family, limit=steps * prompts, seed=args.seed)
    # the same held-out samples for every seed (the synthetic splits never overlap), so "before" is one number
    heldout = pr1.dataset(task, model_family=family, split="val", limit=args.eval_samples, seed=0)
    funcs = pr1.reward_funcs(task, model_family=family)

    start = time.perf_counter()
    before = held_out(policy, heldout, funcs, tokens)
    config = GRPOConfig(
        output_dir=args.out, report_to="none", bf16=False, per_device_train_batch_size=prompts * group,
        num_generations=group, max_completion_length=tokens, temperature=tiny["temperature"],
        learning_rate=args.lr or tiny["learning_rate"], lr_scheduler_type="constant", beta=0.04, epsilon=0.2, loss_type="grpo",
        scale_rewards="group" if tiny["scale_rewards"] else "none", max_grad_norm=1.0, max_steps=steps,
        logging_steps=10, save_strategy="no", seed=args.seed, gradient_checkpointing=False,
        dataloader_num_workers=0, disable_tqdm=True, use_cpu=not torch.cuda.is_available(),
        use_vllm=args.vllm, vllm_mode="colocate",  # a GPU user flips this on: TRL then samples with vLLM
    )
    trainer = GRPOTrainer(model=args.model, reward_funcs=funcs, args=config, train_dataset=train,
                          processing_class=policy.processor)
    trainer.train()
    after = held_out(Policy(trainer.model, policy.processor), heldout, funcs, tokens)
    minutes = (time.perf_counter() - start) / 60
    print(f"{task.name}, seed {args.seed}, {steps} steps x {prompts} prompts x G={group}, {minutes:.1f} min: "
          f"held-out mean reward {before[0]:.4f} -> {after[0]:.4f}; {before[2]} {before[1]:.4f} -> {after[1]:.4f} "
          f"({args.eval_samples} samples, greedy)")


if __name__ == "__main__":
    main()
