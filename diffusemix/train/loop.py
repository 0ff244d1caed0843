"""``train_run``: one training run of a config, on one or several processes (accelerate), resumable.

    python -m diffusemix train stanford-cars --train data/cars/train --val data/cars/test \\
        --method diffusemix --cache cache/cars --budget steps --out runs/cars-dmix
    accelerate launch --multi_gpu --num_processes 4 -m diffusemix train ...   # several GPUs

The run folder holds ``config.json`` (the settings and their sources),
``checkpoints/step-N/`` (accelerate's ``save_state``: model, optimizer, the
schedule, random states, plus ``trainer_state.json``), ``model/`` (the final
weights, readable as ``pretrained``) and ``result.json`` (see
:mod:`diffusemix.train.results`). ``--resume`` continues from the newest
checkpoint with the same batches and draws, so a resumed run ends where an
uninterrupted one does.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import DiffuseMixError
from .augment import BatchAugment, soft_cross_entropy, step_seed
from .budget import Budget, batch_positions, plan_budget
from .config import LoadedConfig, TrainConfig
from .data import LoadedItems, build_train_set, open_split
from .evaluate import accuracy, eval_batches, robustness
from .models import build_model, save_model
from .results import RESULT_FILE, build_result, write_json

__all__ = ["train_run", "lr_factor"]

_AUG_SALT = 0xA06
#: Settings that do not change what a run computes: a resumed run may change them.
_RUN_ONLY = frozenset({"workers", "eval_batch_size", "checkpoint_every"})


def lr_factor(step: int, *, config: TrainConfig, budget: Budget) -> float:
    """The learning rate at optimizer step ``step`` as a fraction of ``config.lr`` (warm-up, then the schedule)."""
    total = budget.total_steps
    warm = budget.epoch_ends[config.warmup_epochs - 1] if config.warmup_epochs else 0
    if step < warm:
        return (step + 1) / warm
    if config.schedule == "cosine":
        floor = config.min_lr / config.lr
        t = (step - warm) / max(1, total - warm)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(t, 1.0)))
    if config.schedule == "step":
        passed = sum(1 for m in config.milestones if m <= budget.epochs and step >= budget.epoch_ends[m - 1])
        return config.gamma**passed
    return 1.0


class _StepBatches:
    """Batch sampler: this process's (pass, index) keys for steps [start, end)."""

    def __init__(self, start: int, end: int, *, n: int, global_batch: int, seed: int, rank: int, world: int) -> None:
        self.start, self.end = start, end
        self.kw = dict(n=n, global_batch=global_batch, seed=seed, rank=rank, world=world)

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __iter__(self):  # type: ignore[no-untyped-def]
        for s in range(self.start, self.end):
            yield batch_positions(s, **self.kw)


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                               nesterov=config.nesterov and config.momentum > 0,
                               weight_decay=config.weight_decay)  # fmt: skip
    return torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*"))
    found = [p for p in found if (p / "trainer_state.json").is_file()]
    return found[-1] if found else None


def _check_out(out: Path, config: TrainConfig, resume: bool) -> None:
    saved = out / "config.json"
    if resume:
        if not saved.is_file():
            raise DiffuseMixError(f"--resume: {out} holds no run (no config.json); start it without --resume")
        try:
            before = json.loads(saved.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            before = None
        before = before.get("config") if isinstance(before, dict) else None
        if not isinstance(before, dict):
            raise DiffuseMixError(
                f"--resume: {saved} is not a run's settings (JSON with a config); start a new run in another --out"
            )
        now = config.to_dict()
        diff = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k) and k not in _RUN_ONLY)
        if diff:
            raise DiffuseMixError(
                f"--resume: the settings differ from the run in {out} ({', '.join(diff)}); resume with the same "
                "config and flags, or start a new run in another --out"
            )
    elif saved.is_file():
        raise DiffuseMixError(
            f"{out} already holds a run (config.json): add --resume to continue it, or choose another --out"
        )


def train_run(
    loaded: LoadedConfig,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    stop_at_epoch: int | None = None,
    notes: tuple[str, ...] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train, evaluate after every epoch, checkpoint, and write ``OUT/result.json``; returns the result.

    Args:
        loaded: the config with its sources (:func:`~diffusemix.train.config.load_config`).
        out: the run folder.
        resume: continue from the newest checkpoint in ``out`` (the settings must be the same).
        stop_at_epoch: stop (with a checkpoint) once this many epochs are done; ``--resume`` continues.
        notes: free words recorded with the result (e.g. "smoke run on synthetic data").
        log: where progress lines go (main process only).

    Raises:
        DiffuseMixError: a missing input, a bad folder or model, an ``out`` that holds another run.
    """
    from accelerate import Accelerator

    config = loaded.config
    t0 = time.perf_counter()

    # 1. check inputs and the run folder
    missing = config.missing_inputs()
    if missing:
        raise DiffuseMixError(f"the run needs {', '.join(missing)}")
    out = Path(out)
    _check_out(out, config, resume)
    if stop_at_epoch is not None and not 1 <= stop_at_epoch <= config.epochs:
        raise DiffuseMixError(f"--stop-at-epoch must be in 1..{config.epochs}; got {stop_at_epoch}")

    # 2. processes and device (no GPU: CPU processes, so `accelerate launch --multi_gpu` works on CPU too)
    cpu = config.device == "cpu" or not torch.cuda.is_available()
    acc = Accelerator(cpu=cpu, mixed_precision=config.mixed_precision, step_scheduler_with_optimizer=False)
    rank, world, main = acc.process_index, acc.num_processes, acc.is_main_process
    say = log if main else (lambda _s: None)

    # 3. data
    train = open_split(config.train, config, default_split="train")  # type: ignore[arg-type]
    val = open_split(config.val, config, classes=train.classes, default_split="validation")  # type: ignore[arg-type]
    tset = build_train_set(config, train)
    val_items = LoadedItems([val], [("split", 0, i) for i in range(len(val))], config.load_size)
    budget = plan_budget(config.budget, epochs=config.epochs, real_images=tset.real_images,
                         dataset_items=len(tset.items), global_batch=config.batch_size * world)  # fmt: skip
    say(tset.summary)
    if tset.stand_in:
        say(f"WARNING: {tset.stand_in}")
    say(f"budget: {config.budget}: {budget.total_steps} steps of {budget.global_batch} images "
        f"({budget.images_seen} images, {budget.passes:.2f} passes over {budget.dataset_items} items) "
        f"on {world} process(es)")  # fmt: skip

    # 4. model, optimizer, schedule
    model = build_model(config.model, num_classes=len(tset.classes), image_size=config.image_size,
                        normalize=config.normalize, pretrained=config.pretrained, seed=config.seed)  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = _optimizer(config, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config=config, budget=budget))
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)
    augment = BatchAugment(config, len(tset.classes)).to(acc.device)

    # 5. resume
    state: dict[str, Any] = {"step": 0, "history": [], "images_seen": 0, "resumed_at": []}
    if resume:
        ckpt = _latest_checkpoint(out)
        if ckpt is None:
            raise DiffuseMixError(f"--resume: {out} has no checkpoint yet; start it again without --resume")
        acc.load_state(str(ckpt))
        state = json.loads((ckpt / "trainer_state.json").read_text(encoding="utf-8"))
        state["resumed_at"] = list(state.get("resumed_at", [])) + [state["step"]]
        say(f"resumed from {ckpt} (step {state['step']} of {budget.total_steps})")
    elif main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", {"config": config.to_dict(), "sources": dict(loaded.sources),
                                         "config_file": loaded.path})  # fmt: skip
    acc.wait_for_everyone()

    # 6. train, epoch by epoch (an epoch ends at budget.epoch_ends[e])
    eval_bs = config.eval_batch_size or config.batch_size
    first_epoch = sum(1 for end in budget.epoch_ends if end <= state["step"])
    last_epoch = budget.epochs if stop_at_epoch is None else stop_at_epoch
    for epoch in range(first_epoch, last_epoch):
        start, end = state["step"], budget.epoch_ends[epoch]
        model.train()
        t_epoch = time.perf_counter()
        sampler = _StepBatches(start, end, n=len(tset.items), global_batch=budget.global_batch, seed=config.seed,
                               rank=rank, world=world)  # fmt: skip
        loader = torch.utils.data.DataLoader(tset.items, batch_sampler=sampler, num_workers=config.workers,
                                             pin_memory=acc.device.type == "cuda")  # fmt: skip
        loss_sum = torch.zeros((), device=acc.device)
        for step, (x, y) in zip(range(start, end), loader):
            x = x.to(acc.device, non_blocking=True).float().div_(255.0)
            y = y.to(acc.device, non_blocking=True)
            x, target = augment(x, y, seed=step_seed(config.seed, step, rank, _AUG_SALT))
            with acc.autocast():
                logits = model(x)
            loss = soft_cross_entropy(logits, target, label_smoothing=config.label_smoothing)
            acc.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach()
            state["step"] = step + 1
            state["images_seen"] += budget.global_batch
        mean_loss = float(acc.reduce(loss_sum, reduction="mean")) / max(1, end - start)
        if not math.isfinite(mean_loss):
            raise DiffuseMixError(f"the training loss is not finite ({mean_loss}) in epoch {epoch + 1}: lower lr")

        # evaluation (each process its share; counts summed)
        batches = eval_batches(val_items, batch_size=eval_bs, image_size=config.image_size, device=acc.device,
                               rank=rank, world=world, workers=config.workers)  # fmt: skip
        top1, top5, total, vloss = accuracy(model, batches, autocast=acc.autocast)
        sums = acc.reduce(torch.tensor([top1, top5, total, vloss], device=acc.device, dtype=torch.float64), "sum")
        top1, top5, total, vloss = (float(v) for v in sums.tolist())
        row = {"epoch": epoch + 1, "step": state["step"], "images_seen": state["images_seen"],
               "lr": optimizer.param_groups[0]["lr"], "train_loss": mean_loss,
               "val_loss": vloss / max(total, 1), "val_acc": top1 / max(total, 1),
               "val_top5": top5 / max(total, 1), "seconds": time.perf_counter() - t_epoch}  # fmt: skip
        state["history"].append(row)
        say(f"[{config.method}] epoch {epoch + 1}/{budget.epochs}  step {state['step']}/{budget.total_steps}  "
            f"loss {mean_loss:.4f}  val acc {100 * row['val_acc']:.2f}%  top-5 {100 * row['val_top5']:.2f}%  "
            f"({row['seconds']:.1f} s)")  # fmt: skip

        # checkpoint
        due = config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0
        if due or epoch + 1 == last_epoch:
            _checkpoint(acc, out, state)

    # 7. the end: robustness, final weights, result.json
    complete = state["step"] >= budget.total_steps
    robust = None
    if complete and config.attacks and main:
        net = acc.unwrap_model(model, keep_fp32_wrapper=False).float()
        robust = robustness(net, val_items, config=config, device=acc.device)
        say("robustness: " + ", ".join(f"{k} {100 * v['accuracy']:.2f}%" for k, v in robust.items()))
    result = build_result(loaded, tset=tset, budget=budget, state=state, robust=robust, complete=complete,
                          params=n_params, world=world, device=str(acc.device), notes=notes,
                          wall=time.perf_counter() - t0)  # fmt: skip
    if main:
        if complete:
            save_model(acc.unwrap_model(model), out / "model", classes=list(tset.classes))
        write_json(out / RESULT_FILE, result)
        say(f"wrote {out / RESULT_FILE}" + ("" if complete else f" (stopped after epoch {last_epoch}: --resume)"))
    acc.wait_for_everyone()
    acc.end_training()
    return result


def _checkpoint(acc: Any, out: Path, state: dict[str, Any]) -> Path:
    """accelerate's save_state + trainer_state.json; the previous checkpoint is removed once this one is whole."""
    folder = out / "checkpoints" / f"step-{state['step']:09d}"
    acc.wait_for_everyone()
    acc.save_state(str(folder))
    if acc.is_main_process:
        write_json(folder / "trainer_state.json", state)
        for old in (out / "checkpoints").glob("step-*"):
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return folder
