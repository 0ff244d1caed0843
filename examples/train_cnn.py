"""Train a small CNN with and without DiffuseMix, in plain PyTorch (no torchvision).

    # 1. once, on a GPU: make the cache of Î (I and the generated images, no mixing)
    python -m diffusemix export data/train cache/train --cache --preset quick --editor instruct-pix2pix
    # 2. anywhere: train on fresh A every epoch, against the same network without DiffuseMix
    python examples/train_cnn.py --train data/train --val data/val --cache cache/train --epochs 10

Prints the dataset's summary (what is trained on) and the validation accuracy
after every epoch, for each run. ``--mode plain`` or ``--mode diffusemix``
runs only one of the two.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from diffusemix.data import DiffuseMixDataset, to_tensor  # noqa: E402
from diffusemix.images import IMAGE_EXTENSIONS, load_image, prepare  # noqa: E402


class ClassFolders(Dataset):
    """A plain class-folder dataset, as torchvision's ImageFolder reads one (sorted classes)."""

    def __init__(self, root: str | os.PathLike[str], size: int, transform: Callable[[Any], Any]) -> None:
        root = Path(root)
        if not root.is_dir():
            raise SystemExit(f"error: {root} is not a folder of class folders (ROOT/<class>/<image>)")
        self.classes = sorted(d.name for d in os.scandir(root) if d.is_dir() and not d.name.startswith("."))
        self.samples = [
            (p, i)
            for i, c in enumerate(self.classes)
            for p in sorted((root / c).rglob("*"))
            if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]
        if not self.samples:
            raise SystemExit(f"error: no images in the class folders of {root}")
        self.size, self.transform = size, transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        from PIL import Image

        path, label = self.samples[i]
        return self.transform(Image.fromarray(prepare(load_image(path), self.size))), label


class SmallCNN(nn.Module):
    """Four conv blocks, global average pooling, one linear layer."""

    def __init__(self, classes: int, width: int = 32) -> None:
        super().__init__()
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True))
            for a, b in zip(chans, chans[1:])
        )
        self.head = nn.Linear(chans[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = F.max_pool2d(block(x), 2) if x.shape[-1] >= 8 else block(x)
        return self.head(x.mean(dim=(2, 3)))


def resized_tensor(size: int) -> Callable[[Any], torch.Tensor]:
    """PIL image → (3, size, size) float tensor in [0, 1] (a plain resize)."""
    from PIL import Image

    def fn(img: Any) -> torch.Tensor:
        if img.size != (size, size):
            img = img.resize((size, size), Image.Resampling.BILINEAR)
        return to_tensor(img)

    return fn


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> float:
    model.eval()
    right = total = 0
    with torch.no_grad():
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            right += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return right / max(total, 1)


def train(name: str, train_set: Any, val_set: ClassFolders, args: argparse.Namespace) -> list[dict[str, float]]:
    torch.manual_seed(args.seed)  # the same initial network for both runs (this script owns its process)
    device = torch.device(args.device)
    model = SmallCNN(len(val_set.classes)).to(device)  # built on the CPU: the same network on every device
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4, nesterov=True)
    shuffle = torch.Generator().manual_seed(args.seed)
    loader = DataLoader(
        train_set,
        batch_size=args.batch_size,
        shuffle=True,
        generator=shuffle,
        num_workers=args.workers,
        persistent_workers=args.workers > 0,
        drop_last=len(train_set) > args.batch_size,
        pin_memory=device.type == "cuda",  # page-locked batches: the copies below overlap the GPU's work
    )
    val = DataLoader(val_set, batch_size=args.batch_size, num_workers=0, pin_memory=device.type == "cuda")
    history = []
    for epoch in range(args.epochs):
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)  # a fresh layout, fractal and λ for every A
        model.train()
        t0, seen, loss_sum = time.perf_counter(), 0, 0.0
        for step, (x, y) in enumerate(loader):
            if args.max_steps and step >= args.max_steps:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(y)
            seen += len(y)
        mean_loss = loss_sum / max(seen, 1)
        acc = evaluate(model, val, device)
        history.append({"epoch": epoch, "loss": mean_loss, "val_acc": acc})
        print(
            f"[{name}] epoch {epoch + 1}/{args.epochs}  loss {mean_loss:.4f}  val acc {100 * acc:.2f}%  "
            f"({seen} samples, {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        if not math.isfinite(mean_loss):
            raise SystemExit(f"error: the {name} run's loss is not finite ({mean_loss})")
    return history


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="training class folders (TRAIN/<class>/<image>)")
    ap.add_argument("--val", required=True, help="validation class folders, same classes")
    ap.add_argument("--cache", help="cache of Î made from --train (needed unless --mode plain)")
    ap.add_argument("--mode", choices=("both", "plain", "diffusemix"), default="both")
    ap.add_argument("--size", type=int, default=64, help="side the network sees (default 64)")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    ap.add_argument("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda when there is one)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--p", type=float, default=1.0, help="probability an item is A rather than its I")
    ap.add_argument("--no-originals", action="store_true", help="leave the real images out of each epoch")
    ap.add_argument("--max-per-image", type=int, default=None, help="Î slots per image per epoch")
    ap.add_argument("--fractals", default=None, help="fractal folder (default: the shipped set)")
    ap.add_argument("--max-steps", type=int, default=0, help="stop each epoch after N steps (0: whole epoch)")
    args = ap.parse_args(argv)
    if args.mode != "plain" and not args.cache:
        ap.error("--cache is needed for the DiffuseMix run (or use --mode plain)")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    elif args.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {args.device}: CUDA is not available here (use --device cpu)")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, list[dict[str, float]]]:
    args = parse(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    tf = resized_tensor(args.size)
    print(f"training on {args.device}", flush=True)
    val_set = ClassFolders(args.val, args.size, tf)
    results = {}
    if args.mode in ("both", "plain"):
        train_set = ClassFolders(args.train, args.size, tf)
        print(f"plain: {len(train_set)} real images in {len(train_set.classes)} classes", flush=True)
        results["plain"] = train("plain", train_set, val_set, args)
    if args.mode in ("both", "diffusemix"):
        mixed = DiffuseMixDataset(
            args.cache,
            fractals=args.fractals,
            seed=args.seed,
            p=args.p,
            include_originals=not args.no_originals,
            max_per_image=args.max_per_image,
            transform=tf,
            classes=val_set.classes,  # refuses a cache whose classes differ from the validation set's
        )
        print(mixed.summary(), flush=True)
        results["diffusemix"] = train("diffusemix", mixed, val_set, args)
    for name, hist in results.items():
        best = max(h["val_acc"] for h in hist)
        print(f"{name}: best val acc {100 * best:.2f}%, last {100 * hist[-1]['val_acc']:.2f}%")
    return results


if __name__ == "__main__":
    main()
