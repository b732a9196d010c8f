"""The trainer: MultiTaskNet with one head per enabled task + the tasks' weighted losses
(:mod:`pyface.train.tasks`; Lee et al. 2024, Sec. 3.2 and 4 for the default recipe), the
recipe's optimiser (SGD with lr 0.01 x 0.9 per epoch by default), AMP, atomic checkpoints
with exact resume, CSV / TensorBoard logs, a loss-curve PNG and per-epoch validation.
The trainer never names a task: it iterates over the enabled ones.

Monitoring callbacks (:mod:`pyface.train.monitor`, config ``monitor``: ``.bin``
verification sets every N steps, best-checkpoint option) are peers of the loop: it calls
each after every step, before the checkpoint, which holds their state.

Run folder (``out_dir``): ``checkpoints/last.pt`` (atomic, every ``checkpoint_every``
steps and at each epoch end), ``train.csv`` (one row per ``log_every`` steps; each task's
loss and its diagnostic terms, e.g. ``fld_wing`` / ``fld_lambda_mse``),
``val.csv``, ``tb/`` (TensorBoard), ``loss_curves.png``, ``config.yaml``, ``model.pt``
(final weights + model config).

Safety (see README "Safety"): :meth:`Trainer.fit` locks the run folder for the job's
lifetime (:class:`pyface.io.FolderLock`; a second training into the same ``out_dir``
is refused naming the holder), refuses to start over in a folder that holds a run unless
asked to resume, and resumes only a checkpoint written under the same configuration
except for the keys declared ``may_change`` in :data:`pyface.train.config.SCHEMA`
(``max_steps``, ``epochs``, log/checkpoint/validation intervals, device, ...); a changed
``lr``, ``batch_size``, preset, task or dataset is refused naming the keys.

Under ``torchrun`` (WORLD_SIZE > 1; :mod:`pyface.train.distributed`): one rank per
device, DDP around the model, the FR class centres sharded over the ranks,
``data.batch_size`` per rank (global batch = batch_size x world size, one step = one
global batch), logs / progress / validation / plots / model.pt on rank 0 only,
checkpoints split into rank 0's last.pt and one shard file per rank.
"""
from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.data import DataLoader

from pyface import runtime
from pyface.errors import CheckpointError, ConfigError, DataError, OutputError
from pyface.io import FolderLock, write_text_atomic
from pyface.models import MultiTaskNet, model_config
from pyface.procs import worker_init_fn
from pyface.train import checkpoint as ckpt
from pyface.train import config as C
from pyface.train import distributed as Dist
from pyface.train.monitor import build_callbacks
from pyface.train.optim import OPTIMIZERS, lr_factor
from pyface.train.sampling import EpochBatchSampler, SeededDataset, collate
from pyface.train.tasks import MultiTaskLoss, TaskContext


def build_dataset(spec, what: str = "data.train"):
    """A config's dataset: a ``{type: Name, **kwargs}`` mapping is opened by
    :func:`pyface.data.open_dataset` (errors name the key ``what``); anything else (a
    dataset object, or a placeholder for datasets passed to the Trainer directly) is
    returned as is."""
    if not isinstance(spec, dict):
        return spec
    from pyface.data import open_dataset

    return open_dataset(spec, what=what)


#: Files whose presence means out_dir holds a training run (fit refuses to start over).
RUN_FILES = ("checkpoints/last.pt", "model.pt", "config.yaml", "train.csv", "val.csv")
#: What a training checkpoint holds (a model.pt holds only "model" and "model_config").
_TRAINING_STATE = ("step", "model", "loss", "optimizer", "scheduler", "scaler", "rng", "history", "val_history")


def existing_run(out_dir: str | os.PathLike) -> Path | None:
    """The first file of a training run in ``out_dir`` (a checkpoint, model.pt,
    config.yaml or a log), or None: what :meth:`Trainer.fit` refuses to start over."""
    for name in RUN_FILES:
        if (Path(out_dir) / name).exists():
            return Path(out_dir) / name
    return None


def refuse_existing_run(out_dir: str | os.PathLike, hint: str = "choose another --out") -> None:
    """OutputError when ``out_dir`` holds a training run (before a job spends time on data).
    A run that is still going is named as such, with its holder (the folder's lock)."""
    found = existing_run(out_dir)
    if found is not None:
        with FolderLock(out_dir, "training run", clean=False):  # raises "in use by ..." while a job holds it
            pass
        raise OutputError(f"{out_dir} already holds a training run ({found}); {hint}")


def _source(spec) -> str:
    """", <spec>" for messages about a configured dataset."""
    if isinstance(spec, dict) and spec:
        return ": " + ", ".join(f"{k}={v}" for k, v in spec.items() if k != "transform")
    return f": {spec}" if isinstance(spec, str) else ""


class Trainer:
    """``Trainer(cfg, train_set=None, val_set=None)``: ``cfg`` as accepted by
    :func:`pyface.train.config.resolve`; datasets given here override data.train/val."""

    def __init__(self, cfg: dict, train_set=None, val_set=None):
        # only resolve()'s own result is taken as resolved: any other dict, even one with
        # every section, gets the defaults, the recipe and the validation
        self.cfg = cfg = cfg if isinstance(cfg, C.ResolvedConfig) else C.resolve(cfg)
        self.out = Path(cfg["out_dir"])
        self.dist, self.device = Dist.setup(runtime.resolve_device(cfg["device"], what="device"))
        self.train_set = train_set if train_set is not None else build_dataset(cfg["data"]["train"], "data.train")
        self.val_set = val_set if val_set is not None else build_dataset(cfg["data"]["val"], "data.val")
        for part, ds in (("train", self.train_set), ("val", self.val_set)):
            if ds is not None and hasattr(ds, "__len__") and len(ds) == 0:
                raise DataError(f"data.{part}: the dataset is empty{_source(cfg['data'][part])}")
        torch.manual_seed(cfg["seed"])
        mcfg = dict(cfg["model"])
        self.model_cfg = model_config(mcfg.pop("preset"), **mcfg)
        self.model = MultiTaskNet(self.model_cfg).to(self.device)
        if cfg.get("init", {}).get("checkpoint"):
            self.init_weights(cfg["init"]["checkpoint"], cfg["init"].get("modules") or ["shared"],
                              cfg["init"].get("format", "auto"))
        self.tasks = tuple(cfg["tasks"])
        ctx = TaskContext(self.model_cfg, self.train_set, fused=cfg["loss"]["fused"], process_group=self.dist.group)
        self.loss = MultiTaskLoss(cfg["tasks"], ctx).to(self.device)
        self.ddp = Dist.wrap_model(self.model, self.dist, self.device)
        if self.dist.enabled:  # same initial weights everywhere, then per-rank dropout etc.
            torch.manual_seed(cfg["seed"] + 1_000_003 * self.dist.rank)
        for t in self.loss.tasks.values():  # validation pairs of the FR metric
            t.num_pairs, t.seed = cfg["val_pairs"], cfg["seed"]
        o = cfg["optim"]
        bs = cfg["data"]["batch_size"] * self.dist.world_size  # the global batch
        self.steps_per_epoch = len(self.train_set) // bs
        if self.steps_per_epoch < 1:
            raise ConfigError(f"data.batch_size: the training set ({len(self.train_set)} samples"
                              f"{_source(cfg['data']['train'])}) is smaller than one batch ({bs})")
        self.total_steps = o["max_steps"] or o["epochs"] * self.steps_per_epoch
        head = [p for n, p in self.model.named_parameters() if n.startswith("heads.")] + list(self.loss.parameters())
        body = [p for n, p in self.model.named_parameters() if not n.startswith("heads.")]
        groups = [{"params": [p for p in body if p.requires_grad]},
                  {"params": [p for p in head if p.requires_grad], "lr": o["lr"] * o["head_lr_mult"]}]
        try:
            self.optimizer = OPTIMIZERS.get(o["name"], what="optim.name")(groups, o)
        except (TypeError, ValueError) as exc:  # e.g. an optim.kwargs key the optimizer does not take
            raise ConfigError(f"optim: the {o['name']} optimizer refuses these settings ({exc})") from exc
        spe, tot = self.steps_per_epoch, self.total_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, spe, tot, o))
        self.amp_dtype = runtime.amp_dtype(cfg["amp"], self.device)
        self.scaler = Dist.grad_scaler(self.device, cfg["amp"] == "fp16", self.dist)
        self.step = 0
        self.history: list[dict] = []
        self.val_history: list[dict] = []
        self.train_fields = ["step", "epoch", "lr", "loss", *self.loss.log_names, "images_per_s"]
        self._tb = None
        self.resumed_from: Path | None = None  # the checkpoint load_state_dict came from (resume)
        # monitoring peers of the loop (pyface.train.monitor), called after every step
        self.callbacks = build_callbacks(cfg, self.model)

    # ------------------------------------------------------------------ state
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def state_dict(self) -> dict:
        return {"step": self.step, "model": self.model.state_dict(), "loss": self.loss.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "rng": ckpt.rng_state(), "history": self.history,
                "val_history": self.val_history, "callbacks": {cb.name: cb.state_dict() for cb in self.callbacks},
                "model_config": self.model_cfg.to_dict(), "config": dict(self.cfg)}  # plain data only

    def load_state_dict(self, st: dict) -> None:
        self.model.load_state_dict(st["model"])
        self.loss.load_state_dict(st["loss"])
        self.optimizer.load_state_dict(st["optimizer"])
        self.scheduler.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])
        self.step = st["step"]
        self.history, self.val_history = list(st["history"]), list(st["val_history"])
        for cb in self.callbacks:
            cb.load_state_dict(st.get("callbacks", {}).get(cb.name, {}))
        ckpt.set_rng_state(st["rng"])

    def save_checkpoint(self) -> Path:
        if not self.dist.enabled:
            return ckpt.save_atomic(self.state_dict(), self.checkpoint_path)
        d, r, w = self.checkpoint_path.parent, self.dist.rank, self.dist.world_size
        main, shard = Dist.split_state(self.state_dict(), self.loss, self.optimizer, self.dist)
        ckpt.save_atomic(shard, ckpt.shard_path(d, self.step, r, w))
        self.dist.barrier()
        if self.dist.is_main:  # commits the step
            ckpt.save_atomic(main, self.checkpoint_path)
        self.dist.barrier()
        ckpt.prune_shards(d, self.step, r, w)
        return self.checkpoint_path

    def resume(self, path: str | os.PathLike | None = None) -> bool:
        """Load ``path`` (default: out_dir/checkpoints/last.pt; False when there is none;
        a ``path`` given that does not exist is an error). The checkpoint must be a
        training checkpoint of this configuration: keys other than those declared
        ``may_change`` must not differ (:func:`pyface.train.config.resume_problems`),
        else a ConfigError names them. Distributed, every rank loads last.pt and its own
        shard file."""
        explicit = path is not None
        path = Path(path) if path else self.checkpoint_path
        if not path.exists():
            if explicit:
                raise runtime.CheckpointNotFoundError(f"resume: checkpoint not found: {path}")
            return False
        st = ckpt.load_rank(path, self.dist.rank, self.dist.world_size, map_location=self.device)
        if runtime.is_legacy_state_dict(st.get("model", {})):
            # its loss/optimizer state has another layout (before the task registry)
            raise CheckpointError(f"{path} was written by an older pyface (before the head registry): its training "
                                  "state cannot be resumed; start a new run from its weights with "
                                  f"init: {{checkpoint: {path}, modules: [shared, heads]}}")
        missing = [k for k in _TRAINING_STATE if k not in st]
        if missing:
            raise CheckpointError(f"{path}: not a training checkpoint (it lacks {', '.join(map(repr, missing))}; "
                                  "model.pt holds weights only): resume from checkpoints/last.pt, or start a new run "
                                  f"from these weights with init: {{checkpoint: {path}, modules: [shared, heads]}}")
        self._check_resumable(st, path)
        try:
            self.load_state_dict(st)
        except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise CheckpointError(f"{path}: its training state does not fit this model and tasks "
                                  f"({runtime._short(exc, 300)})") from exc
        self.resumed_from = path
        return True

    def _check_resumable(self, st: dict, path: Path) -> None:
        saved = st.get("config")
        if not isinstance(saved, dict):
            import warnings

            warnings.warn(f"{path} does not record its configuration (an older pyface): the resume cannot check "
                          "that lr, batch_size, tasks and data are unchanged", RuntimeWarning, stacklevel=3)
            return
        changed = C.resume_problems(saved, self.cfg)
        if changed:
            raise ConfigError(f"cannot resume {path}: the configuration changed: {'; '.join(changed)}. A resumed run "
                              f"keeps its settings except {', '.join(C.may_change_on_resume())}; rerun with the "
                              "original settings, or start a new run in another out_dir")

    def init_weights(self, path, modules, format: str = "auto") -> list[str]:
        """Copy the parameters and buffers under ``modules`` (name prefixes, e.g. "shared")
        from ``path`` (``model.pt`` or a trainer checkpoint; with ``format`` "torchvision"
        -- or "auto" on such a file -- a torchvision ResNet state dict, e.g. ImageNet
        weights, :mod:`pyface.models.torchvision_weights`) into the model: the start of
        fine-tuning / linear evaluation from a pre-trained encoder. Every such tensor of
        this model must exist in the file with the same shape. Returns the copied names."""
        from pyface.models.torchvision_weights import from_torchvision_resnet, is_torchvision_resnet

        if not Path(path).exists():
            raise runtime.CheckpointNotFoundError(f"init.checkpoint: checkpoint not found: {path}")
        src = runtime.read_checkpoint(path, map_location=self.device, what="init.checkpoint")
        src = src.get("model", src)
        if format == "torchvision" or (format == "auto" and is_torchvision_resnet(src)):
            try:
                src = from_torchvision_resnet(src, self.model)
            except ValueError as exc:
                raise ConfigError(f"init.checkpoint {path}: {exc}") from exc
        else:
            src = runtime.upgrade_state_dict(src)
        own = self.model.state_dict()
        names = [k for k in own if any(k == m or k.startswith(m + ".") for m in modules)]
        if not names:
            raise ConfigError(f"init.modules: {list(modules)} match no parameter of the model")
        bad = [k for k in names if k not in src or src[k].shape != own[k].shape]
        if bad:
            raise CheckpointError(f"init.checkpoint {path}: {len(bad)} tensors missing or of another shape, e.g. "
                             f"{bad[0]!r} (was the encoder pre-trained with the same arch/width/layers?)")
        self.model.load_state_dict({k: src[k] for k in names}, strict=False)
        return names

    # ------------------------------------------------------------------ data
    def _loader(self, dataset, sampler, workers):
        # Own generator: creating the iterator draws a worker base seed, which must not
        # consume the global RNG (dropout) -- otherwise a resumed run would diverge.
        g = torch.Generator().manual_seed(self.cfg["seed"])
        return DataLoader(SeededDataset(dataset), batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                          pin_memory=self.device.type == "cuda", persistent_workers=False, generator=g,
                          worker_init_fn=worker_init_fn())  # workers die with the job (pyface.procs)

    def prepare(self, batch: dict) -> dict:
        """Move the tensors to the device; resize images (and scale landmarks) to the model
        input size. Float labels become float32, integer labels int64."""
        dev = self.device
        b = {}
        for k, v in batch.items():
            if not isinstance(v, torch.Tensor):
                b[k] = v
            elif k == "image" or k.startswith("image_"):  # image_*: extra views (e.g. Barlow Twins)
                b[k] = v.to(dev, non_blocking=True)
            else:
                b[k] = v.to(dev, torch.float32 if v.is_floating_point() else torch.int64)
        img, n = b["image"], self.model_cfg.input_size
        if img.shape[-1] != n or img.shape[-2] != n:
            sy, sx = n / img.shape[-2], n / img.shape[-1]
            for k in [k for k in b if k == "image" or k.startswith("image_")]:
                b[k] = runtime.prepare_input(b[k], n)
            if "landmarks" in b:
                b["landmarks"] = b["landmarks"] * torch.tensor([sx, sy], device=dev)
        return b

    def _autocast(self):
        return runtime.autocast(self.device, self.cfg["amp"])

    # ------------------------------------------------------------------ training
    def train_step(self, batch: dict) -> dict:
        self.model.train()
        b = self.prepare(batch)
        # the tasks' batch transforms draw from a generator seeded by the step (exact resume)
        g = torch.Generator(device=self.device).manual_seed(self.cfg["seed"] * 1_000_003 + self.step
                                                            + 7919 * self.dist.rank)
        b = self.loss.prepare(b, g)
        with self._autocast():
            out = self.ddp(b["image"])
        total, parts = self.loss(out, b)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        Dist.sync_replicated_grads(self.loss.parameters(), self.dist)
        clip = self.cfg["optim"]["grad_clip"]
        if clip:
            self.scaler.unscale_(self.optimizer)
            Dist.clip_grad_norm(list(self.model.parameters()) + list(self.loss.parameters()), clip, self.dist)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        self.loss.observe(b)
        return {"loss": total.detach(), **parts}

    def fit(self, resume: bool | str = False, callback=None) -> dict:
        """Train to ``total_steps`` (resuming from the last checkpoint when asked); returns
        the last validation metrics (empty without a validation set)."""
        with self._run_folder(resume):
            return self._fit(callback)

    @contextlib.contextmanager
    def _run_folder(self, resume):
        """Own ``out_dir`` for the job: lock it (rank 0; a second job is refused naming the
        holder), remove a killed run's uncommitted files, and either resume or check that
        the folder holds no run to overwrite. Every rank raises when one of them fails."""
        main = self.dist.is_main
        lock, err = FolderLock(self.out, "training run"), None
        try:
            if main:
                try:
                    lock.acquire()  # also removes a killed run's uncommitted files
                    if not resume and self.resumed_from is None:
                        existing = self.existing_run()
                        if existing is not None:
                            raise OutputError(f"{self.out} already holds a training run ({existing}); pass --resume "
                                              "to continue it, or choose another out_dir (--out-dir)")
                except OutputError as exc:
                    err = exc
            if Dist.any_rank(err is not None, self.dist, self.device):
                raise err or OutputError(f"{self.out}: rank 0 could not take the run folder (see its error)")
            if resume:
                self.resume(None if resume is True else resume)
            yield
        finally:
            lock.release()

    def existing_run(self) -> Path | None:
        return existing_run(self.out)

    def _fit(self, callback) -> dict:
        cfg = self.cfg
        main, world = self.dist.is_main, self.dist.world_size
        if main:
            write_text_atomic(self.out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
            self._rewrite_csv("train.csv", self.train_fields, self.history)
            self._rewrite_csv("val.csv", None, self.val_history)
        if cfg["tensorboard"] and main:
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(self.out / "tb"), purge_step=self.step or None)
        bs, spe = cfg["data"]["batch_size"], self.steps_per_epoch
        last_val = self.val_history[-1] if self.val_history else {}
        acc, n_acc, t0, imgs = {}, 0, time.perf_counter(), 0
        try:
            while self.step < self.total_steps:
                epoch, start = divmod(self.step, spe)
                sampler = EpochBatchSampler(len(self.train_set), bs, cfg["seed"], epoch, start,
                                            rank=self.dist.rank, world_size=world)
                loader = self._loader(self.train_set, sampler, cfg["data"]["num_workers"])
                bar = self._bar(epoch, start, spe) if main else None
                for batch in loader:
                    r = self.train_step(batch)
                    for k, v in r.items():
                        acc[k] = acc.get(k, 0.0) + v
                    n_acc += 1
                    imgs += batch["image"].shape[0] * world
                    if self.step % cfg["log_every"] == 0 or self.step == self.total_steps:
                        dt = time.perf_counter() - t0
                        row = {"step": self.step, "epoch": self.step / spe,
                               "lr": self.optimizer.param_groups[0]["lr"], "images_per_s": imgs / max(dt, 1e-9)}
                        row.update({k: v / n_acc for k, v in Dist.mean_over_ranks(acc, self.dist).items()})
                        if main:
                            self._log_train(row)
                        if bar is not None:
                            bar.set_postfix(loss=f"{row['loss']:.3g}", img_s=f"{row['images_per_s']:.0f}")
                        acc, n_acc, t0, imgs = {}, 0, time.perf_counter(), 0
                    if bar is not None:
                        bar.update(1)
                    epoch_end = self.step % spe == 0
                    if (epoch_end and main and self.val_set is not None
                            and (self.step // spe) % cfg["val_every_epochs"] == 0):
                        last_val = self._validate()
                    for cb in self.callbacks:  # before the checkpoint, which holds their state
                        cb(self)
                    if self.step % cfg["checkpoint_every"] == 0 or epoch_end or self.step == self.total_steps:
                        self.save_checkpoint()
                    if epoch_end and main:
                        self.plot()
                    if callback is not None:
                        callback(self)
                    if self.step >= self.total_steps:
                        break
                if bar is not None:
                    bar.close()
            final_val = main and self.val_set is not None and (not last_val or last_val.get("step") != self.step)
            if Dist.any_rank(final_val, self.dist, self.device):
                if main:
                    last_val = self._validate()
                self.save_checkpoint()
            if main:
                self.plot()
                runtime.save_model(self.model, self.out / "model.pt")
        finally:
            if self._tb is not None:
                self._tb.close()
                self._tb = None
        return last_val

    def _bar(self, epoch, start, spe):
        if not self.cfg["progress"]:
            return None
        from tqdm import tqdm

        return tqdm(total=spe, initial=start, desc=f"epoch {epoch + 1}", unit="step", dynamic_ncols=True,
                    leave=False)

    # ------------------------------------------------------------------ logging
    def _rewrite_csv(self, name, fields, rows):
        """Rewrite a log from the (checkpointed) history: after a resume it holds exactly
        the rows up to the checkpoint."""
        path = self.out / name
        if not rows:
            if path.exists():
                path.unlink()
            return
        fields = fields or list(rows[0])
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
        write_text_atomic(path, buf.getvalue())

    def _append_csv(self, name, fields, row):
        path = self.out / name
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)

    def _log_train(self, row):
        self.history.append(row)
        self._append_csv("train.csv", self.train_fields, row)
        if self._tb is not None:
            for k, v in row.items():
                if k != "step":
                    self._tb.add_scalar(f"train/{k}", v, row["step"])

    def _validate(self) -> dict:
        m = self.evaluate(self.val_set)
        row = {"step": self.step, "epoch": self.step / self.steps_per_epoch, **m}
        self.val_history.append(row)
        self._append_csv("val.csv", list(row), row)
        if self._tb is not None:
            for k, v in m.items():
                if isinstance(v, float) and math.isfinite(v):
                    self._tb.add_scalar(f"val/{k}", v, self.step)
        return row

    def plot(self) -> Path | None:
        if not self.history:
            return None
        from pyface.train.plots import plot_loss_curves

        return plot_loss_curves(self.history, self.val_history, self.out / "loss_curves.png", self.loss.weights)

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def predict(self, dataset, batch_size: int | None = None) -> dict[str, np.ndarray]:
        """Model outputs over ``dataset`` in order, plus the labels the tasks need as
        ``"<key>_gt"`` (no augmentation randomness: each item is seeded by its index; the
        tasks' training-time batch transforms are not applied)."""
        self.model.eval()
        bs = batch_size or self.cfg["data"]["val_batch_size"]
        sampler = EpochBatchSampler(len(dataset), bs, self.cfg["seed"], 0, shuffle=False, drop_last=False)
        keys = self.loss.label_keys
        cols: dict[str, list] = {}
        for batch in self._loader(dataset, sampler, self.cfg["data"]["num_workers"]):
            b = self.prepare(batch)
            out = runtime.forward(self.model, b["image"], amp=self.cfg["amp"])  # as trained: no flip-sum
            for k, v in out.items():
                cols.setdefault(k, []).append(v.float().cpu())
            for k in keys:
                if k in b:
                    cols.setdefault(k + "_gt", []).append(b[k].cpu())
        return {k: torch.cat(v).numpy() for k, v in cols.items()}

    def evaluate(self, dataset) -> dict[str, float]:
        """Each enabled task's validation metrics over ``dataset`` (e.g. pose MAE in
        degrees, bbox-normalised NME, 10-fold verification accuracy, and the
        mean-label baselines; see pyface.train.tasks)."""
        return self.loss.metrics(self.predict(dataset))
