"""The `torch` evaluator: trains an architecture on a dataset and reports validation accuracy, test accuracy and
the measured training time.

Protocol (docs/datasets.md has the long form):
- data: the dataset's seeded, stratified split (`split_seed`, fixed by default so that every candidate of a
  search sees the same split); inputs standardised per channel with the training split's mean and std;
- training: `epochs` passes, each over a fresh permutation of the training split drawn from `seed`
  (mini-batches of `batch_size`; a last batch of one sample is dropped, batch norm cannot train on it);
  SGD with Nesterov momentum (default) or Adam / AdamW, weight decay, cosine learning-rate decay per step;
  cross-entropy loss on the network's output (logits);
- selection: after each epoch the validation accuracy is measured; the best epoch's weights (ties go to the
  later epoch) give `valid_accuracy`, and `test_accuracy` is measured once with those weights: the test split
  never influences selection;
- timing: `train_time_s` is the wall time of the training steps only (forward, backward, optimizer step,
  scheduler), excluding data preparation and validation; on CUDA the device is synchronised before each
  clock reading; `extra["train_cpu_time_s"]` is the process CPU time over the same steps;
- determinism: `torch.manual_seed(seed)` (the caller's global RNG state is given back after), weights from
  `seed`, a seeded data order, `torch.use_deterministic_algorithms(True)` (cuDNN deterministic, no benchmark)
  while training. On CPU two runs with the same seed and thread count give identical results (set `threads`).
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self, get_args

import numpy as np
from pydantic import BeforeValidator, ConfigDict, Field, field_validator

from .. import validation
from ..datasets.base import empty_split_advice
from ..datasets.loaders import MAX_RESIZE_PX, resize_hint, resize_option
from ..errors import DataError, TrainingDivergedError
from ..ir.architecture import Architecture
from ..validation import Count, Seed, validate_options
from .base import EvaluationResult, Evaluator
from .repair import ParentNetwork, repair
from .torch_parts import accuracy, make_optimizer, recovery_epochs, resolve_device

if TYPE_CHECKING:  # pragma: no cover
    from ..datasets.base import DatasetSource
    from ..registry import Registry
    from ..timemodels.training import TrainingPlan
    from ..toolkit import Toolkit


class TorchEvaluator(Evaluator):
    """Train with PyTorch on a dataset (default: digits) and measure accuracy and training time.

    Options: `TorchEvaluator.Options` (types, defaults, ranges; docs/options.md), defaults also in `DEFAULTS`."""

    name = "torch"
    description = "train with PyTorch (SGD/Adam, cosine schedule) on a dataset; best-epoch valid + test accuracy"

    class Options(validation.Options):
        # The defaults are tuned on digits with the simple-cnn seed (benchmarks/evaluate-digits.json): >= 97%
        # test accuracy in 15 epochs for every seed tried, a few seconds on 2 CPU cores.
        model_config = ConfigDict(strict=True, allow_inf_nan=False)

        dataset: Any = Field(
            "digits",
            description="registered name, image folder or .npz path, or a loaded Dataset",
            json_schema_extra={"type_name": "str | Dataset"},
        )
        epochs: Count = Field(15, description="passes over the training split")
        batch_size: int = Field(32, ge=1)
        lr: float = Field(0.2, gt=0, description="peak learning rate")
        optimizer: Literal["sgd", "adam", "adamw"] = Field("sgd", description='"sgd": with Nesterov momentum')
        momentum: float = Field(0.9, ge=0, description="SGD only")
        weight_decay: float = Field(5e-4, ge=0)
        schedule: Literal["cosine", "constant"] = Field("cosine", description="learning rate: cosine decay per step")
        label_smoothing: float = Field(0.0, ge=0, lt=1)
        seed: Seed = Field(0, description="initialisation and data order")
        split_seed: Seed = Field(0, description="the dataset's split (fixed: every candidate sees the same one)")
        valid_fraction: float = Field(0.1, ge=0, lt=1)
        test_fraction: float = Field(0.2, ge=0, lt=1)
        resize: Annotated[int | list[int] | None, BeforeValidator(resize_option)] = Field(
            None,
            description="an image-folder dataset's images resized (bilinear) to PX x PX, or [H, W] to H x W (each "
            f"1..{MAX_RESIZE_PX}); images of mixed size need it",
            json_schema_extra={"type_name": "int | [int, int] | none"},
        )
        device: str = Field("cpu", description='"cpu", "cuda", "cuda:N" or "auto" (CUDA when torch sees one)')
        threads: int | None = Field(1, ge=1, le=1024, description="torch's CPU threads in training (none: its setting)")
        normalize: bool = Field(True, description="standardise inputs with the training split's per-channel statistics")
        eval_batch_size: int = Field(1024, ge=1)
        progress: bool = Field(False, description="a tqdm bar on stderr")
        inherit_epochs: int = Field(
            2, ge=1, description="passes over the training split when starting from a parent's weights (fine-tuning)"
        )
        inherit_lr: float | None = Field(
            None, gt=0, description="peak learning rate when fine-tuning from a parent's weights (none: lr / 10)"
        )
        inherit_max_drop: float = Field(
            0.05,
            ge=0,
            le=1,
            description="an approximately inherited network starting more than this far (accuracy, fraction) "
            "below its parent, after the repair, is damaged: inherit_damaged says what it gets instead of the "
            "short fine-tune",
        )
        inherit_repair: bool = Field(
            True,
            description="a damaged approximate start (inherit_max_drop) is repaired before its epoch 0: batch norm "
            "statistics re-estimated and the output linear layer refit by least squares on training images "
            "(na_toolkit.evaluation.repair), then judged again",
        )
        inherit_reconstruct: bool = Field(
            True,
            description="the repair first refits, front to back, each convolution whose output drifted from the "
            "parent's at the same node, by least squares on training images (needs the parent's weights)",
        )
        inherit_repair_samples: int = Field(
            1024, ge=2, description="training images read by the repair (a seeded subset of the training split)"
        )
        inherit_damaged: Literal["recover", "scratch"] = Field(
            "recover",
            description='a damaged approximate start (inherit_max_drop): "recover" fine-tunes it from the '
            'inherited weights at lr for inherit_recovery_epochs, "scratch" trains it from scratch',
        )
        inherit_grad_clip: float | None = Field(
            1.0,
            gt=0,
            description="training from a parent's weights (fine-tune or recovery), each step's gradient is "
            "scaled down to this global L2 norm when above it (none: never)",
        )
        inherit_recovery_epochs: int | None = Field(
            None,
            ge=1,
            description="passes over the training split recovering a damaged start (none: half of epochs, rounded up)",
        )

        @field_validator("*", mode="before")
        @classmethod
        def _numpy_scalars(cls, value: Any) -> Any:
            return value.item() if isinstance(value, np.generic) else value  # seeds drawn from a numpy RNG

    def __init__(self, *, datasets: Registry[DatasetSource] | None = None, **options: Any):
        # `datasets` (the toolkit's registry, given by `from_toolkit`) is where a dataset name is looked up;
        # it is a dependency, not an option: paths and loaded datasets need none
        self.datasets = datasets
        validate_options(self.Options, options, "evaluator.options")
        super().__init__(**{**DEFAULTS, **options})

    @classmethod
    def from_toolkit(cls, toolkit: Toolkit, **options: Any) -> Self:
        return cls(datasets=toolkit.datasets, **options)

    # ------------------------------------------------------------------------------------------------
    def load_dataset(self):
        from ..datasets import get_dataset

        o = self.options
        return get_dataset(
            o["dataset"],
            self.datasets,
            seed=o["split_seed"],
            valid_fraction=o["valid_fraction"],
            test_fraction=o["test_fraction"],
            resize=tuple(o["resize"]) if isinstance(o["resize"], list) else o["resize"],
        )

    def check(self, arch: Architecture, dataset=None) -> None:
        """Raise DataError unless the dataset splits into samples to train and select on (checked here, so a
        search refuses it before paying for anything: every evaluation would fail the same way), and `arch`
        takes the dataset's input shape and outputs one unit per class."""
        ds = dataset if dataset is not None else self.load_dataset()
        for split, size in (("training", len(ds.y_train)), ("validation", len(ds.y_valid))):
            if size == 0:
                raise DataError(
                    f"dataset {ds.name!r} ({ds.samples} samples): its {split} split is empty; "
                    + empty_split_advice(ds, split, self.options["valid_fraction"])
                )
        if tuple(arch.input_shape) != ds.input_shape:
            raise DataError(
                f"architecture {arch.name or arch.hash!r} takes input shape {tuple(arch.input_shape)} but dataset "
                f"{ds.name!r} has input shape {ds.input_shape}; build the network for the dataset's shape (from torch: "
                f"from_torch(model, torch.zeros{(1, *ds.input_shape)}, layer_types)){resize_hint(ds, arch.input_shape)}"
            )
        if tuple(arch.output_shape) != (ds.classes,):
            raise DataError(
                f"architecture {arch.name or arch.hash!r} outputs shape {tuple(arch.output_shape)} but dataset "
                f"{ds.name!r} has {ds.classes} classes; the final layer must output ({ds.classes},) logits"
            )

    def evaluate(self, arch: Architecture) -> EvaluationResult:
        return self._run(arch)[0]

    def training_plan(self) -> TrainingPlan:
        """The training split's size (the dataset loaded and split as `evaluate` does), `batch_size` and
        `epochs` (training from scratch): what a time model's `train_time_s` multiplies its step time by."""
        from ..timemodels.training import TrainingPlan

        ds = self.load_dataset()
        o = self.options
        return TrainingPlan(len(ds.y_train), int(o["batch_size"]), int(o["epochs"]), f"torch evaluator on {ds.name}")

    def evaluate_with_weights(
        self,
        arch: Architecture,
        init_state: dict[str, Any] | None = None,
        parent_accuracy: float | None = None,
        parent_network: ParentNetwork | None = None,
    ) -> tuple[EvaluationResult, dict[str, Any]]:
        """`evaluate`, plus the selected (best-epoch) weights as a CPU state dict of `arch.to_torch()`: the
        weights `test_accuracy` was measured with (the search exports them).

        `init_state` (a state dict of `arch.to_torch()`, e.g. inherited from a parent through a move,
        `na_toolkit.evaluation.inherit`) replaces the fresh initialisation: the network is then fine-tuned
        for `inherit_epochs` at `inherit_lr`, and its accuracy before fine-tuning counts as epoch 0. Given
        `parent_accuracy`, weights that start more than `inherit_max_drop` below it are damaged: with
        `inherit_damaged = "recover"` they are fine-tuned at `lr` for `inherit_recovery_epochs`
        (`extra["inherit_recovery"]` says so), with "scratch" dropped and the network trains from scratch
        (`extra["inherit_fallback"]`). `parent_network` (the parent's architecture, trained state dict and the
        nodes the child shares with it) lets the repair of a damaged start reconstruct its drifted
        convolutions (`inherit_reconstruct`)."""
        result, model = self._run(arch, init_state, parent_accuracy, parent_network)
        return result, {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}

    def _run(
        self,
        arch: Architecture,
        init_state: dict[str, Any] | None = None,
        parent_accuracy: float | None = None,
        parent_network: ParentNetwork | None = None,
    ):
        o = self.options
        ds = self.load_dataset()
        self.check(arch, ds)
        import torch  # after the checks: a mismatch is reported without paying for the import

        device = resolve_device(o["device"])
        old_threads = torch.get_num_threads()
        old_deterministic = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        old_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        if device.type == "cuda":
            # cuBLAS needs this for deterministic matmuls (read when its handle is created)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        try:
            if o["threads"]:
                torch.set_num_threads(int(o["threads"]))
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # seeded, then given back
                result, model = self._train(arch, ds, device, init_state, parent_accuracy, parent_network)
                if init_state is not None and result.extra["diverged"] and "inherit_fallback" not in result.extra:
                    # training from the inherited weights diverged (a non-finite loss): nothing was learnt from
                    # them, so the network trains from scratch; the attempt's cost is recorded, not hidden
                    wasted = result
                    result, model = self._train(arch, ds, device)
                    fallback = {
                        "diverged": True,
                        "valid_accuracy": wasted.extra["history"][0]["valid_accuracy"],
                        "parent_valid_accuracy": parent_accuracy,
                        "epochs": wasted.epochs,
                        "train_time_s": wasted.train_time_s,
                        "train_cpu_time_s": wasted.extra["train_cpu_time_s"],
                    }
                    result = replace(result, extra={**result.extra, "inherit_fallback": fallback})
                return result, model
        finally:
            torch.set_num_threads(old_threads)
            torch.use_deterministic_algorithms(old_deterministic[0], warn_only=old_deterministic[1])
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old_cudnn

    # ------------------------------------------------------------------------------------------------
    def _train(
        self,
        arch: Architecture,
        ds,
        device,
        init_state: dict[str, Any] | None = None,
        parent_accuracy: float | None = None,
        parent_network: ParentNetwork | None = None,
    ):
        import torch
        from torch.nn import functional as F
        from tqdm import tqdm

        o = self.options
        started = time.perf_counter()
        seed = int(o["seed"])
        torch.manual_seed(seed)
        model = arch.to_torch(seed=seed)
        if init_state is not None:
            model.load_state_dict(init_state)
        model = model.to(device)

        if o["normalize"]:
            mean = ds.x_train.mean(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)[None, :, None, None]
            std = ds.x_train.std(axis=(0, 2, 3), dtype=np.float64).astype(np.float32)[None, :, None, None]
            std[std == 0] = 1.0
        else:
            mean, std = np.float32(0.0), np.float32(1.0)

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray((x - mean) / std, dtype=np.float32)).to(device)

        x_train, y_train = tensor(ds.x_train), torch.from_numpy(ds.y_train).to(device)
        x_valid, x_test = tensor(ds.x_valid), tensor(ds.x_test)

        def sync() -> None:  # a clock read on CUDA waits for the queued kernels
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        history: list[dict[str, float]] = []
        best_acc, best_state = -1.0, None
        fallback: dict[str, float] | None = None
        recovery: dict[str, float] | None = None
        repaired: dict[str, Any] | None = None
        train_time_s = train_cpu_s = 0.0
        if init_state is not None:  # epoch 0: the inherited weights as they are
            valid_acc = accuracy(model, x_valid, ds.y_valid, int(o["eval_batch_size"]))
            bar = parent_accuracy if parent_accuracy is not None else -math.inf
            if valid_acc < bar - o["inherit_max_drop"] and o["inherit_repair"]:
                # a damaged approximate start: its stale batch norm statistics and classifier are repaired from
                # data first (no gradient steps; the time counts as training time), then judged again
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                done = repair(
                    model,
                    x_train,
                    y_train,
                    batch_size=int(o["batch_size"]),
                    samples=int(o["inherit_repair_samples"]),
                    seed=seed,
                    parent=parent_network if o["inherit_reconstruct"] else None,
                )
                sync()
                train_time_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
                repaired = {"valid_accuracy_before": valid_acc, **done.to_json(), "train_time_s": train_time_s}
                valid_acc = accuracy(model, x_valid, ds.y_valid, int(o["eval_batch_size"]))
            damaged = valid_acc < bar - o["inherit_max_drop"]
            if damaged and o["inherit_damaged"] == "scratch":
                fallback = {"valid_accuracy": valid_acc, "parent_valid_accuracy": bar}
                init_state = None
                model = arch.to_torch(seed=seed).to(device)
            else:
                if damaged:
                    recovery = {
                        "valid_accuracy": valid_acc,
                        "parent_valid_accuracy": bar,
                        "epochs": recovery_epochs(o),
                    }
                history.append({"epoch": 0, "valid_accuracy": valid_acc, "train_time_s": train_time_s})
                best_acc, best_state = valid_acc, copy.deepcopy(model.state_dict())
        epochs, lr = int(o["epochs"]), o["lr"]
        if recovery is not None:
            # a damaged approximate start is not retrained from scratch but fine-tuned from the inherited weights
            # at the full rate, long enough to recover (Cai et al. 2018, arXiv:1707.04873; approximate network
            # morphisms, Elsken et al. 2019, arXiv:1804.09081); the length is measured in docs/moves.md
            epochs = int(recovery["epochs"])
        elif init_state is not None:
            # fine-tuning from inherited weights: fewer epochs, a lower rate (lr / 10 is our choice, not a
            # paper's: the inherited function is kept through the first steps instead of being overwritten)
            epochs, lr = int(o["inherit_epochs"]), (o["inherit_lr"] or o["lr"] / 10)

        optimizer = make_optimizer(model, {**o, "lr": lr})
        n = len(y_train)
        batch = min(int(o["batch_size"]), n)
        steps_per_epoch = n // batch + (1 if n % batch > 1 else 0)
        total_steps = max(1, steps_per_epoch * epochs)
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
            if o["schedule"] == "cosine"
            else None
        )
        order = torch.Generator().manual_seed(seed)  # data order, independent of the init RNG stream

        # a start from a parent's weights can sit where the loss is steep (a refit layer feeding no batch norm,
        # features a higher dropout rate now perturbs): its first full-rate steps then blow up (a recovery went
        # to chance, loss 895, and stayed there); clipping the gradient's norm bounds every step (Pascanu et al.
        # 2013, arXiv:1211.5063). From scratch on digits the median norm is about 1 (docs/moves.md)
        clip = o["inherit_grad_clip"] if init_state is not None else None
        clipped = torch.zeros((), dtype=torch.long, device=device)
        steps = 0
        best_epoch = 0
        diverged = False
        label = arch.name or arch.hash
        # no tqdm object at all unless asked for: even a disabled one makes a multiprocessing lock (a named
        # semaphore), which an executor's worker ended mid-training would leave for the resource tracker to warn of
        bar = (
            tqdm(range(1, epochs + 1), desc=f"train {label}", unit="epoch", file=sys.stderr, leave=False)
            if o["progress"]
            else None
        )
        for epoch in bar if bar is not None else range(1, epochs + 1):
            model.train()
            perm = torch.randperm(n, generator=order).to(device)
            loss_sum = torch.zeros((), device=device)
            seen = 0
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            for i in range(0, n, batch):
                idx = perm[i : i + batch]
                if len(idx) < 2:  # batch norm cannot train on a single sample
                    break
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx], label_smoothing=o["label_smoothing"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if clip is not None:
                    clipped += torch.nn.utils.clip_grad_norm_(model.parameters(), clip) > clip
                steps += 1
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                loss_sum += loss.detach() * len(idx)
                seen += len(idx)
            sync()
            epoch_s = time.perf_counter() - t0
            train_time_s += epoch_s
            train_cpu_s += time.process_time() - c0
            train_loss = float(loss_sum) / max(seen, 1)
            valid_acc = accuracy(model, x_valid, ds.y_valid, int(o["eval_batch_size"]))
            history.append(
                {"epoch": epoch, "train_loss": train_loss, "valid_accuracy": valid_acc, "train_time_s": epoch_s}
            )
            if not math.isfinite(train_loss):
                # further epochs cannot recover from NaN weights, and these are no result: an argmax of NaN
                # logits is class 0 for every input, so their "accuracy" is class 0's share of the data
                diverged = True
                break
            if valid_acc >= best_acc:
                best_acc, best_epoch = valid_acc, epoch
                best_state = copy.deepcopy(model.state_dict())
            if bar is not None:
                bar.set_postfix(loss=f"{train_loss:.3f}", valid=f"{valid_acc:.3f}", best=f"{best_acc:.3f}")
        if bar is not None:
            bar.close()
        if best_state is None:
            raise TrainingDivergedError(
                f"training {label} diverged in epoch {history[-1]['epoch']} of {epochs} (a non-finite loss, lr {lr:g}) "
                "before any epoch ended with finite weights: it learnt nothing to keep; lower the learning rate "
                "(evaluator option lr)",
                *(history[-1]["epoch"], train_time_s, train_cpu_s),  # what it cost: epochs, wall and CPU seconds
            )

        model.load_state_dict(best_state)
        test_acc = accuracy(model, x_test, ds.y_test, int(o["eval_batch_size"])) if len(ds.y_test) else None
        plain = (str, int, float, bool, type(None), list)  # a list: resize = [H, W]
        options = {k: (v if isinstance(v, plain) else repr(v)) for k, v in o.items()}
        if not isinstance(o["dataset"], str):
            options["dataset"] = ds.name
        result = EvaluationResult(
            arch_hash=arch.hash,
            valid_accuracy=best_acc,
            test_accuracy=test_acc,
            train_time_s=train_time_s,
            epochs=sum(1 for h in history if h["epoch"] > 0),
            evaluator=self.name,
            best_epoch=best_epoch,
            dataset=ds.name,
            seed=seed,
            device=str(device),
            extra={
                "history": history,
                "options": options,
                "diverged": diverged,
                "params": arch.params,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                # CPU time of the process during the training steps: on a shared machine it stays close to
                # what the wall time would be alone (with threads=1), where train_time_s grows with the load
                "train_cpu_time_s": train_cpu_s,
                "total_time_s": time.perf_counter() - started,
                # what a deployed copy of the trained network needs from the data: the inputs it was
                # trained on are x' = (x - mean) / std per channel (identity without `normalize`), and the
                # output's class order (written with every export of the network)
                "input_normalization": {
                    "mean": [float(v) for v in np.broadcast_to(mean, (1, ds.input_shape[0], 1, 1)).ravel()],
                    "std": [float(v) for v in np.broadcast_to(std, (1, ds.input_shape[0], 1, 1)).ravel()],
                },
                "class_names": [str(c) for c in ds.class_names],
                "raw_input": ds.raw_input.to_json() if ds.raw_input is not None else None,  # before the mean / std
                **({"inherit_fallback": fallback} if fallback is not None else {}),
                **({"inherit_recovery": recovery} if recovery is not None else {}),
                **({"inherit_repair": repaired} if repaired is not None else {}),
                **(
                    {"grad_clip": {"max_norm": clip, "clipped_steps": int(clipped), "steps": steps}}
                    if clip is not None
                    else {}
                ),
            },
        )
        return result, model


#: option -> default (from `TorchEvaluator.Options`)
DEFAULTS: dict[str, Any] = {name: f.default for name, f in TorchEvaluator.Options.model_fields.items()}
OPTIMIZERS: tuple[str, ...] = get_args(TorchEvaluator.Options.model_fields["optimizer"].annotation)
SCHEDULES: tuple[str, ...] = get_args(TorchEvaluator.Options.model_fields["schedule"].annotation)
