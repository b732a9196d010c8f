"""Monitoring callbacks: peers of the training loop that the trainer calls after every
step, as insightface arcface_torch's ``CallBackVerification`` (Lee et al. 2024, Sec.
4.1.1: LFW, CFP-FP and AgeDB "were used to monitor the learning process of face
recognition during multitask training").

:class:`VerificationMonitor` (config section ``monitor``)::

    monitor:
      bins: [/data/faces_vgg2_112x112/lfw.bin, /data/faces_vgg2_112x112/cfp_fp.bin]
      every: 2000        # steps (and the last step)
      best: lfw          # a set name, "mean" (over the sets) or null: save model_best.pt on improvement
      batch_size: 128

Every ``every`` steps (rank 0 only) each insightface ``.bin`` set is embedded with
flip-sum embeddings and scored with the 10-fold protocol of
:func:`pyface.eval.verification_accuracy` (:func:`pyface.eval.suites.eval_verification`);
the rows go to ``verification.csv`` (one per evaluation: step, ``<set>_accuracy``,
``<set>_std``, ``<set>_threshold``) and TensorBoard (``verification/<set>``); with
``best``, ``model_best.pt`` (the weights, as ``model.pt``) and ``verification_best.json``
are rewritten atomically whenever the chosen accuracy improves. The monitor's history is
part of the trainer checkpoint, so a resumed run continues it exactly.

A callback is any object with ``name``, ``__call__(trainer)``, ``state_dict()`` and
``load_state_dict(state)``; :func:`build_callbacks` makes the configured ones.
"""
from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

from pyface.errors import ConfigError

__all__ = ["MONITOR_DEFAULTS", "VerificationMonitor", "build_callbacks"]

#: The ``monitor`` section's keys and defaults (pyface.train.config.DEFAULTS["monitor"]).
MONITOR_DEFAULTS = {"bins": [], "every": 2000, "best": None, "batch_size": 128}


class VerificationMonitor:
    """Verification accuracy on ``.bin`` pair sets during training (module docstring)."""

    name = "verification"

    def __init__(self, bins, every: int = 2000, best: str | None = None, batch_size: int = 128):
        from pyface.data.verification_bin import VerificationBin

        if isinstance(bins, (str, Path)):
            bins = [bins]
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise ConfigError(f"monitor.every must be a positive number of steps, got {every!r}")
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
            raise ConfigError(f"monitor.batch_size must be a positive int, got {batch_size!r}")
        self.sets = []
        for i, b in enumerate(bins):
            try:
                self.sets.append(VerificationBin(str(b)))
            except (FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"monitor.bins[{i}]: {exc}") from exc
        names = [s.name for s in self.sets]
        if len(set(names)) != len(names):
            raise ConfigError(f"monitor.bins: two sets share a name ({names}); name the files apart")
        if best is not None and best != "mean" and best not in names:
            raise ConfigError(f"monitor.best must be null, 'mean' or one of the sets {names}, got {best!r}")
        self.every, self.best_of, self.batch_size = every, best, batch_size
        self.history: list[dict] = []
        self.best: dict | None = None

    # -------------------------------------------------------------- state (in the trainer checkpoint)
    def state_dict(self) -> dict:
        return {"history": list(self.history), "best": self.best}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history", []))
        self.best = state.get("best")

    # -------------------------------------------------------------- the callback
    def __call__(self, trainer) -> dict | None:
        if not trainer.dist.is_main:
            return None
        if trainer.step % self.every and trainer.step != trainer.total_steps:
            return None
        if self.history and self.history[-1]["step"] == trainer.step:
            return None  # already evaluated at this step (e.g. resumed at it)
        return self.evaluate(trainer)

    def evaluate(self, trainer) -> dict:
        from pyface import runtime
        from pyface.eval.suites import eval_verification

        t0 = time.perf_counter()
        amp = trainer.cfg["amp"]
        res = eval_verification(trainer.model, self.sets, batch_size=self.batch_size, device=trainer.device,
                                amp=amp if amp != "none" else False, progress=False)
        trainer.model.train()
        row: dict = {"step": trainer.step, "epoch": trainer.step / trainer.steps_per_epoch}
        for name, r in res.items():
            row[f"{name}_accuracy"], row[f"{name}_std"], row[f"{name}_threshold"] = r["accuracy"], r["std"], \
                r["threshold"]
        row["mean_accuracy"] = sum(r["accuracy"] for r in res.values()) / max(len(res), 1)
        row["seconds"] = time.perf_counter() - t0
        self.history.append(row)
        out = Path(trainer.out)
        self._write_csv(out / "verification.csv")
        tb = getattr(trainer, "_tb", None)
        if tb is not None:
            for name, r in res.items():
                tb.add_scalar(f"verification/{name}", r["accuracy"], trainer.step)
        if self.best_of is not None:
            score = row["mean_accuracy"] if self.best_of == "mean" else row[f"{self.best_of}_accuracy"]
            if math.isfinite(score) and (self.best is None or score > self.best["accuracy"]):
                from pyface.io import write_json_atomic

                self.best = {"set": self.best_of, "accuracy": score, "step": trainer.step}
                runtime.save_model(trainer.model, out / "model_best.pt")
                write_json_atomic(out / "verification_best.json", {**self.best, "row": row})
        return row

    def _write_csv(self, path: Path) -> None:
        from pyface.io import write_text_atomic

        fields = list(dict.fromkeys(k for r in self.history for k in r))
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.history)
        write_text_atomic(path, buf.getvalue())


def build_callbacks(cfg: dict, model=None) -> list:
    """The monitoring callbacks a resolved config asks for (``monitor.bins`` non-empty:
    a :class:`VerificationMonitor` for ``model``), checked now (a missing ``.bin`` fails
    before training)."""
    m = {**MONITOR_DEFAULTS, **(cfg.get("monitor") or {})}
    unknown = set(m) - set(MONITOR_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown monitor keys {sorted(unknown)}; known: {sorted(MONITOR_DEFAULTS)}")
    if not m["bins"]:
        return []
    if model is not None and "embedding" not in getattr(model, "outputs", {}).values():
        raise ConfigError(f"monitor.bins needs a model with face embeddings (the fr task); its heads are "
                          f"{list(model.outputs)}")
    return [VerificationMonitor(m["bins"], m["every"], m["best"], m["batch_size"])]
