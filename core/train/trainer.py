"""The GRPO trainer: rollouts, rewards, one clipped-surrogate update, logs and checkpoints.

Rollout, reference log-probs and the update are separate steps (``rollout`` / ``score`` / ``update``),
so another generator can replace ``Policy.generate`` later. Runs go through ``accelerate``; every
process samples its own prompts, gradients are averaged by DDP.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import random
import resource
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from perception_r1.contract import Task
from perception_r1.data import io
from perception_r1.data.batches import draw_for, round_robin
from perception_r1.data.prepare import prepare_sample
from perception_r1.data.synthetic import synthetic_samples
from perception_r1.display import console, metrics_table, print_table, progress
from perception_r1.errors import UserError
from perception_r1.evaluate.evaluation import evaluate_policy
from perception_r1.model.lora import adapter_off
from perception_r1.train import checkpoint, rundir, sharded_state
from perception_r1.train.advice import signal_warning, step_status
from perception_r1.train.config import dump_yaml, use_threads
from perception_r1.train.engine import (
    engine_of,
    gathered_for_generation,
    make_accelerator,
    prepare_model,
    resumable,
)
from perception_r1.train.grpo import grpo_loss, zero_std_fraction
from perception_r1.train.plan import RunPlan
from perception_r1.train.rewards import component_means, describe
from perception_r1.train.sampling import Draw, draw_until_spread, kept_advantages, loss_mask, token_weights
from perception_r1.train.step import Record, group_records, reward_records, rollout

if TYPE_CHECKING:
    from perception_r1.model.policy import Rollout

EVAL_SEED = 0  # the held-out set is the same for every run, whatever its --seed, so runs compare


def start_line(config: Mapping[str, Any], model: str, num_params: int, by_size: list[str], from_task: list[str],
               rewards, engine: str = "single process, 1 process") -> str:
    """What a run will do, printed before it starts: the settings a user most often needs to check."""
    size = f"a model of {num_params / 1e6:.1f}M parameters"
    why = (f" (the task's setting for {size}; --lr to change)" if "learning_rate" in from_task else
           f" (default for {size}; --lr to change)" if "learning_rate" in by_size else "")
    filled = by_size + [f"{k} (task)" for k in from_task]
    return (f"GRPO on {config['task']}: model {model}, lr {config['learning_rate']:g}{why}, "
            f"{config['steps']} steps x {config['prompts_per_step']} prompts x G={config['group_size']}, "
            f"temperature {config['temperature']:g}, rewards: {describe(rewards)}, "
            f"torch threads {torch.get_num_threads()}, engine {engine}; defaults filled: {', '.join(filled) or 'none'}")


def read_results(path: Path) -> dict[str, Any]:
    """A resumed run's ``eval.json`` ({} when there is none yet); anything else there is a one-line error."""
    results = io.read_json_object(path) if path.exists() else {}

    def metrics_object(value: Any) -> bool:
        return isinstance(value, dict) and all(isinstance(v, int | float) for v in value.values())

    for key in ("before", "after"):
        if not metrics_object(results.get(key, {})):
            raise UserError(f"{path}:1: '{key}' must be an object of metric names to numbers (not written by this run?)")
    during = results.get("during", {})
    if not isinstance(during, dict) or not all(k.isdigit() and metrics_object(v) for k, v in during.items()):
        raise UserError(f"{path}:1: 'during' must map step numbers to metric objects (not written by this run?)")
    return results


#: below this KL (nats per token) the policy counts as equal to the reference (float noise is ~1e-8)
IDLE_KL = 1e-6
#: steps the console's warnings look back over (and the least number of steps between two warnings)
NO_SIGNAL_WARNING = 5


def _mean_stats(parts: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    """kl and clip_fraction over several parts, weighted by their token counts (one part: its own numbers)."""
    if len(parts) == 1:
        stats = parts[0][0]
        return {"kl": stats.get("kl", 0.0), "clip_fraction": stats["clip_fraction"]}
    total = max(sum(n for _, n in parts), 1.0)
    return {key: sum(s.get(key, 0.0) * n for s, n in parts) / total for key in ("kl", "clip_fraction")}


class Trainer:
    def __init__(self, plan: RunPlan, out: Path, resume: bool = False) -> None:
        """Train as ``plan`` says (:func:`perception_r1.train.plan.plan_run`): its config is read, never edited."""
        from perception_r1.model.policy import Policy

        config = self.config = plan.config
        self.out = out
        # mixed_precision null: accelerate's own choice (its launch config or env); "bf16" autocasts forwards
        self.accelerator = make_accelerator(config.get("mixed_precision"))
        self.engine = engine_of(self.accelerator)  # what runs, from accelerate's state: config.yaml, logs, start line
        self.rank = self.accelerator.process_index
        self.main = self.accelerator.is_main_process
        if self.accelerator.num_processes > 1:  # a default run name holds a time: use the main process's
            from accelerate.utils import broadcast_object_list

            self.out = out = Path(broadcast_object_list([str(out)])[0])
        use_threads(config["threads"])
        torch.manual_seed(config["seed"] * 1000 + self.rank)
        self.tasks, self.rewards = list(plan.tasks), list(plan.rewards)
        self.policy = Policy.load(config["model"], coords=config.get("coords"))
        if self.main:
            line = start_line(config, self.policy.name, self.policy.num_parameters, list(plan.by_size),
                              list(plan.from_task), self.rewards, str(self.engine))
            console.print(line, highlight=False, markup=False, soft_wrap=True)
        if config.get("lora_rank"):  # the reference is then the same weights with the adapter off
            from perception_r1.model.lora import apply_lora

            apply_lora(self.policy, config["lora_rank"], config.get("lora_alpha"), bool(config.get("lora_vision")))
        if config.get("gradient_checkpointing"):  # recompute activations in backward: less memory, more time
            self.policy.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.policy.model.train()
        self.reference = None
        if config["beta"] > 0 and not config.get("lora_rank"):  # the frozen start point the KL term pulls towards
            self.reference = copy.deepcopy(self.policy.model).eval().requires_grad_(False)
        trainable = [p for p in self.policy.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=config["learning_rate"], weight_decay=0.0)
        self.model, self.optimizer = self.accelerator.prepare(self.policy.model, optimizer)
        prepare_model(self.accelerator, self.model)
        self.pools = {t.name: self._load_data(t) for t in self.tasks} if config["data"] else {}
        self.step = 0
        if resume:
            self._resume()

    # -- data ----------------------------------------------------------------------------------
    def _load_data(self, task: Task) -> dict[str, list[dict[str, Any]]]:
        from perception_r1.data.loaders import load_samples  # knows the paper's upstream formats

        pools = {split: load_samples(task, self.config["data"], split).samples for split in ("train", "val")}
        for split, pool in pools.items():
            if not pool:
                raise UserError(f"--data {self.config['data']}: no '{split}' samples for task '{task.name}'")
        return pools

    def samples(self, task: Task, split: str, n: int, seed: int) -> list[dict[str, Any]]:
        """``n`` samples of ``task``: from its real data when --data is given, else synthetic."""
        if not self.pools:
            return synthetic_samples(task, split, n, seed=seed)
        pool = self.pools[task.name][split]
        if split != "train":
            return pool[:n]
        rng = random.Random(seed)
        return [dict(rng.choice(pool)) for _ in range(n)]

    def batch_for(self, step: int, attempt: int = 0) -> list[Record]:
        """A step's N = P * G records: a pure function of (seed, step, rank, attempt), so a resumed run sees the
        same data; ``attempt`` > 0: dynamic sampling's further draws."""
        seed = (self.config["seed"] * 1_000_003 + step) * 64 + self.rank
        if attempt:
            seed = (seed << 8) + attempt  # attempt < 256 (the schema caps tries at 64)
        tasks = round_robin(self.tasks, self.config["prompts_per_step"], step)
        samples = draw_for(tasks, lambda task, n: self.samples(task, "train", n, seed))
        prepared = [prepare_sample(s, self.policy, task) for s, task in zip(samples, tasks, strict=True)]
        return group_records(prepared, tasks, self.config["group_size"])

    def heldout(self, task: Task) -> list[dict[str, Any]]:
        return self.samples(task, "val", self.config["eval_samples"], EVAL_SEED)

    # -- one GRPO step -------------------------------------------------------------------------
    def train_step(self, step: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """batch -> rollout -> score -> advantages -> update; returns the step's metrics and its log rows."""
        c, G = self.config, self.config["group_size"]
        t0 = time.perf_counter()
        timing = {"generation": 0.0}
        if c["dynamic_sampling"]:
            draws, counts = draw_until_spread(functools.partial(self.draw, step, timing=timing),
                                              c["prompts_per_step"], G, c["dynamic_sampling_max_tries"])
        else:
            draws, counts = [self.draw(step, 0, timing)], {}
        advantages = kept_advantages(draws, G, c["scale_rewards"])  # (N,) per draw
        update = self.update(draws, advantages)
        first = draws[0]  # the reward metrics read the step's first draw: the prompts any run would see
        records = [r for d in draws for r in d.records]
        metrics = {
            "step": step + 1, **update, **self._reward_metrics(first.rewards, first.components), **counts,
            "completion_length": first.rollout.completion_mask.float().sum(dim=1).mean().item(),
            "seconds": time.perf_counter() - t0, "generation_seconds": timing["generation"],
            "processes": self.accelerator.num_processes,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        }
        logged = [r.log_row(step + 1) for r in records] if step % c["log_completions_every"] == 0 else []
        return metrics, logged

    def draw(self, step: int, attempt: int, timing: dict[str, float]) -> Draw:
        """One draw of the step: batch -> rollout -> score."""
        c, G = self.config, self.config["group_size"]
        records = self.batch_for(step, attempt)  # (N = P * G), groups contiguous
        t0 = time.perf_counter()
        self.model.eval()
        with gathered_for_generation(self.accelerator, self.model):  # sharded weights: one gather per rollout
            rolled = rollout(self.policy, records, G, c["max_new_tokens"], c["temperature"],
                             logprobs=c["sampler_correction_cap"] is not None)
        self.model.train()
        timing["generation"] += time.perf_counter() - t0
        rewards, components = reward_records(self.rewards, records)  # (N,)
        return Draw(records, rolled, rewards, components)

    def _ref_logprobs(self, rolled: Rollout) -> torch.Tensor | None:
        if self.config["beta"] <= 0:  # beta 0: no reference forward at all
            return None
        reference = self.reference if self.reference is not None else self.policy.model
        with torch.no_grad(), adapter_off(self.policy):
            return self.policy.token_logprobs(rolled, model=reference, temperature=self.config["temperature"])

    def update(self, draws: list[Draw], advantages: list[torch.Tensor]) -> dict[str, Any]:
        """``updates_per_batch`` clipped-surrogate steps on the step's rollouts (k3 KL to the reference when
        beta > 0). The first pass's log-probs are the old ones every later pass's ratio divides by. Several
        draws (dynamic sampling) add their parts' gradients before one optimizer step."""
        c = self.config
        parts = [(d, a, loss_mask(d, c["mask_truncated_completions"])) for d, a in zip(draws, advantages, strict=True)
                 if d.kept().any()]
        whole = len(parts) == 1 and draws[0].keep is None  # one draw, every row: the parts are the batch
        rows = None if whole else sum(int(d.kept().sum()) for d, _, _ in parts)
        tokens = None if whole else sum(m.sum().item() for _, _, m in parts)
        refs = [self._ref_logprobs(d.rollout) for d, _, _ in parts]
        olds: list[torch.Tensor | None] = [None] * len(parts)
        weights: list[torch.Tensor | None] = [None] * len(parts)
        signal = torch.cat([a for _, a, _ in parts])
        low = c["clip_eps"] if c["clip_eps_low"] is None else c["clip_eps_low"]
        high = c["clip_eps_high"] if c["clip_eps_high"] is not None else None if c["clip_eps_low"] is None else c["clip_eps"]
        for _ in range(c["updates_per_batch"]):
            losses, all_stats, idle = [], [], False
            for i, (d, adv, mask) in enumerate(parts):
                last = i == len(parts) - 1  # DDP: one gradient all-reduce per pass, after the last part
                with contextlib.nullcontext() if last else self.accelerator.no_sync(self.model):
                    logprobs = self.policy.token_logprobs(d.rollout, model=self.model, temperature=c["temperature"])
                    old = olds[i]
                    if old is None:  # rollouts come from the current weights: ratio 1 on the first update
                        old = olds[i] = logprobs.detach()
                        weights[i] = token_weights(d, old, mask, c["sampler_correction_cap"])
                    loss, stats = grpo_loss(
                        logprobs, old, refs[i], adv, mask, clip_eps=low, beta=c["beta"],
                        how=c["loss_aggregation"], max_tokens=c["max_new_tokens"], clip_eps_high=high,
                        level=c["importance_sampling_level"], token_weights=weights[i], rows=rows, tokens=tokens,
                    )
                    if i == 0:  # every rank decides the same, before any backward: a skipped update costs none
                        idle = self._nothing_to_learn(signal, stats.get("kl", 0.0))
                        if idle:
                            break
                        self.optimizer.zero_grad(set_to_none=True)
                    self.accelerator.backward(loss)
                losses.append(loss.item())
                all_stats.append((stats, mask.sum().item()))
            if idle:
                grad_norm, losses, all_stats = 0.0, [loss.item()], [(stats, 1.0)]
                continue
            grad_norm = float(self.accelerator.clip_grad_norm_(list(self.model.parameters()), 1.0))
            self.optimizer.step()
        return {"loss": sum(losses), **_mean_stats(all_stats), "grad_norm": grad_norm, "update_skipped": idle}

    def _reward_metrics(self, rewards: torch.Tensor, components: dict[str, list[float | None]]) -> dict[str, Any]:
        all_rewards = self.accelerator.gather(rewards)
        return {
            "reward": all_rewards.mean().item(),
            "reward_std": all_rewards.std().item() if all_rewards.numel() > 1 else 0.0,
            "zero_std_groups": zero_std_fraction(rewards, self.config["group_size"]),
            **{f"rewards/{k}": v for k, v in component_means(components).items()},
        }

    def _nothing_to_learn(self, advantages: torch.Tensor, kl: float) -> bool:
        """True when no process has a reward difference in any group and the policy still equals the reference.

        The gradient is then float noise (policy and reference forwards differ by ~1e-7), and Adam would scale
        it to a full-size random step: the update is skipped. Decided over all processes, so DDP ranks agree.
        """
        local = torch.tensor([advantages.abs().max().item() if advantages.numel() else 0.0, abs(kl)])
        signal, kl_all = self.accelerator.gather(local.to(self.accelerator.device)).view(-1, 2).max(0).values.tolist()
        return signal == 0.0 and kl_all < IDLE_KL

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, label: str, bar: Any = None) -> dict[str, float]:
        """Held-out metrics now; ``bar``: the training's progress bar, which shows the evaluation's too (rich
        allows one live display at a time)."""
        if self.config["eval_samples"] == 0:
            return {}
        with gathered_for_generation(self.accelerator, self.model):  # every process: the gather is collective
            return self._evaluate_here(label, bar) if self.main else {}

    def _evaluate_here(self, label: str, bar: Any) -> dict[str, float]:
        when = f"{label} training" if label in ("before", "after") else f"at {label}"
        console.print(f"evaluating {when}: {self.config['eval_samples']} held-out samples per task")
        model = self.accelerator.unwrap_model(self.model)
        model.eval()
        flat: dict[str, float] = {}
        records: list[dict[str, Any]] = []
        for task in self.tasks:
            samples = self.heldout(task)
            with contextlib.nullcontext(bar) if bar is not None else progress() as shown, torch.no_grad():
                tid = shown.add_task(f"eval {label} {task.name}", total=len(samples), status="")
                metrics, recs = evaluate_policy(
                    self.policy, task, samples, self.config["eval_batch_size"], self.config["max_new_tokens"],
                    on_batch=functools.partial(shown.advance, tid),
                )
                if bar is not None:
                    shown.remove_task(tid)
            prefix = "" if len(self.tasks) == 1 else f"{task.name}/"
            flat.update({prefix + k: v for k, v in metrics.items()})
            records += recs
        io.write_jsonl(self.out / f"eval_{label}.jsonl", records)
        model.train()
        return flat

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        c = self.config
        eval_path = self.out / "eval.json"
        results = read_results(eval_path)  # before config.yaml is written: a refusal changes nothing
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
            io.atomic_write_text(self.out / "config.yaml", dump_yaml(self._recorded_config()))

        def save_results() -> None:  # after each evaluation: a kill keeps every result so far
            if self.main:
                io.atomic_write_text(eval_path, json.dumps(results, indent=2))

        if "before" not in results:
            results["before"] = self.evaluate("before")
            save_results()
        names = ",".join(t.name for t in self.tasks)
        recent: list[dict[str, Any]] = []  # the last steps' metrics, for the console's warnings
        with progress() as bar:
            tid = bar.add_task(f"GRPO {names}", total=c["steps"], completed=self.step, status="")
            while self.step < c["steps"]:
                metrics, rows = self.train_step(self.step)
                metrics["engine"] = self.engine.kind
                self.step += 1
                recent = (recent + [metrics])[-NO_SIGNAL_WARNING:]
                if self.main and (warning := signal_warning(recent, c, every=NO_SIGNAL_WARNING)):
                    console.print(warning, highlight=False, markup=False, soft_wrap=True)
                if self.main:
                    io.append_jsonl(self.out / "metrics.jsonl", metrics)
                    for row in rows:
                        io.append_jsonl(self.out / "completions.jsonl", row)
                    status = step_status(metrics)
                    bar.update(tid, advance=1, status=status)
                    if not bar.live.is_started or not console.is_terminal:
                        console.print(f"step {self.step}/{c['steps']}  {status}  {metrics['seconds']:.2f}s/step")
                if c["eval_every"] and self.step % c["eval_every"] == 0 and self.step < c["steps"]:
                    results.setdefault("during", {})[str(self.step)] = self.evaluate(f"step-{self.step}", bar)
                    save_results()
                every = c["checkpoint_every"]
                if (every and self.step % every == 0) or self.step == c["steps"]:
                    self._save()
        results["after"] = self.evaluate("after")
        save_results()
        if self.main:
            if results["before"]:
                print_table(metrics_table({"before": results["before"], "after": results["after"]},
                                          title=f"held-out {names} ({c['eval_samples']} samples)"))
            from perception_r1.evaluate.report import write_report

            data = [c["data"]] if c["data"] and Path(str(c["data"])).exists() else []  # a hub name is no directory
            console.print(f"report: {write_report(self.out, data)}")
            console.print(f"run directory: {self.out}")
        return results

    # -- checkpoints ---------------------------------------------------------------------------
    def _recorded_config(self) -> dict[str, Any]:
        return {**self.config, "out": str(self.out), "engine": str(self.engine)}

    def _save(self) -> None:
        """One whole checkpoint (gathered from the shards, by every process; written by the main one)."""
        self.accelerator.wait_for_everyone()
        weights = sharded_state.full_weights(self.accelerator, self.model)
        optimizer_state = sharded_state.full_optimizer_state(self.accelerator, self.model, self.optimizer)
        from accelerate.utils import gather_object

        rngs = gather_object([torch.get_rng_state()]) if self.accelerator.num_processes > 1 else None
        if self.main:
            model = self.accelerator.unwrap_model(self.model)
            checkpoint.save(self.out / "checkpoints", self.step, model, self.optimizer, {"config": self._recorded_config()},
                            adapter=self.policy.peft, weights=weights, optimizer_state=optimizer_state, rng_states=rngs)
        self.accelerator.wait_for_everyone()

    def _resume(self) -> None:
        recorded = self.config.get("engine")
        if not resumable(recorded, self.engine):  # never silently another engine than the one that trained
            raise UserError(f"--resume {self.out}: the run trained with {recorded}, this launch runs {self.engine}; "
                            f"resume it with the accelerate configuration it started with")
        latest = checkpoint.latest(self.out / "checkpoints")
        if latest is not None and self.engine.deepspeed:  # ZeRO partitions the optimizer state by rank
            raise UserError(f"--resume {self.out}: resuming a DeepSpeed run is not supported (its checkpoints hold the "
                            f"gathered weights for save-model, not ZeRO's partitioned optimizer state)")
        self.step = 0
        if latest is not None:
            model = self.accelerator.unwrap_model(self.model)
            try:
                state = checkpoint.load(
                    latest, model, self.optimizer, adapter=self.policy.peft,
                    weights_into=sharded_state.weights_loader(self.accelerator, self.model, self.policy.peft is not None),
                    optimizer_into=sharded_state.optimizer_loader(self.accelerator, self.model, self.optimizer),
                    rank=self.rank)
            except (ValueError, OSError, KeyError, TypeError) as exc:
                raise UserError(f"--resume: {exc}") from exc
            self.step = state["step"]
        # drop log lines written after the last checkpoint (or all, if the kill came before the first one):
        # those steps run again; a torn last line and interrupted checkpoint writes are what a kill leaves
        if self.main:
            read_results(self.out / "eval.json")  # checked before any log is repaired: a refusal changes nothing
            rundir.repair_logs(self.out, self.step)
            rundir.remove_partial_checkpoints(self.out / "checkpoints")
        console.print(f"resumed from {latest or 'the start (no checkpoint yet)'} (step {self.step})")
