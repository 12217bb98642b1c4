"""The training loop: batches of P people x K photo views, a metric loss, Adam, a checkpoint each epoch.

An epoch is one pass's worth of steps over the training photos (photos / batch size). The
checkpoint holds the trained stages, the optimiser and every random state, so a resumed run takes
the same steps an uninterrupted one would have. Ctrl-C stops at once and keeps the last
checkpoint; nothing outside the run folder is touched.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from faceid.errors import BadInputError
from faceid.thresholds import (
    FINETUNE_LR_PAIRWISE,
    FINETUNE_LR_TRIPLET,
    FINETUNE_PEOPLE_PER_BATCH,
    FINETUNE_PHOTOS_PER_PERSON,
    FINETUNE_STEPS,
    FINETUNE_VIEWS,
)
from faceid.train.features import FeatureStore
from faceid.train.losses import LOSSES, metric_loss
from faceid.train.network import TRAINABLE_CHOICES, DescriptorNet

log = logging.getLogger(__name__)

DEFAULT_LEARNING_RATES = {"triplet": FINETUNE_LR_TRIPLET, "pairwise": FINETUNE_LR_PAIRWISE}
CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainSettings:
    loss: str = "triplet"
    trainable: str = "256"
    steps: int = FINETUNE_STEPS
    people_per_batch: int = FINETUNE_PEOPLE_PER_BATCH
    photos_per_person: int = FINETUNE_PHOTOS_PER_PERSON
    learning_rate: float | None = None
    margin: float | None = None
    views: int = FINETUNE_VIEWS
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise BadInputError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if self.trainable not in TRAINABLE_CHOICES:
            raise BadInputError(f"trainable must be one of {', '.join(TRAINABLE_CHOICES)}, not {self.trainable!r}")
        for name in ("steps", "people_per_batch", "photos_per_person", "views"):
            if getattr(self, name) < 1:
                raise BadInputError(f"{name.replace('_', ' ')} must be at least 1")
        if self.people_per_batch < 2 or self.photos_per_person < 2:
            raise BadInputError("a batch needs at least 2 people and 2 photos per person")

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.loss]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "learning_rate": self.lr}


@dataclass
class TrainResult:
    steps: int
    epochs_completed: int
    seconds: float
    epoch_losses: list[float] = field(default_factory=list)
    resumed_from_step: int = 0


class BatchSampler:
    """P people, then K distinct (photo, view) pairs of each: every anchor has positives in its batch."""

    def __init__(self, labels: np.ndarray, views: int, people: int, per_person: int, rng: np.random.Generator):
        self.by_person = [np.flatnonzero(labels == label) for label in np.unique(labels)]
        self.by_person = [indices for indices in self.by_person if len(indices) >= 2]
        if len(self.by_person) < 2:
            raise BadInputError("fine-tuning needs at least 2 people with 2 or more photos each")
        self.views = views
        self.people = min(people, len(self.by_person))
        self.per_person = per_person
        self.rng = rng

    def sample(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(photo indices, view indices, person labels) of one batch."""
        photos: list[int] = []
        views: list[int] = []
        labels: list[int] = []
        for label in self.rng.choice(len(self.by_person), self.people, replace=False):
            indices = self.by_person[label]
            combos = len(indices) * self.views
            picks = self.rng.choice(combos, min(self.per_person, combos), replace=False)
            photos.extend(indices[picks // self.views])
            views.extend(picks % self.views)
            labels.extend([label] * len(picks))
        return np.array(photos), np.array(views), np.array(labels)


def _save_atomic(state: dict[str, Any], path: Path) -> None:
    temporary = path.with_name(path.name + ".part")
    torch.save(state, temporary)
    os.replace(temporary, path)


class Trainer:
    def __init__(
        self,
        net: DescriptorNet,
        features: FeatureStore,
        labels: np.ndarray,
        settings: TrainSettings,
        run_dir: Path,
        progress: bool = True,
        device: str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.net = net.to(self.device)
        self.features = features
        self.labels = np.asarray(labels)
        self.settings = settings
        self.run_dir = run_dir
        self.progress = progress
        self.first = net.first_trainable(settings.trainable)
        if self.first != features.first_stage:
            raise ValueError("the cached features were computed for another set of trained stages")
        net.freeze_below(self.first)
        self.parameters = net.trainable_parameters(self.first)
        self.optimizer = torch.optim.Adam(self.parameters, lr=settings.lr)
        self.rng = np.random.default_rng(settings.seed)
        torch.manual_seed(settings.seed)
        self.sampler = BatchSampler(
            self.labels, features.views, settings.people_per_batch, settings.photos_per_person, self.rng
        )
        self.batch_size = self.sampler.people * settings.photos_per_person
        self.steps_per_epoch = max(1, math.ceil(len(self.labels) / self.batch_size))
        self.step = 0
        self.epoch_losses: list[float] = []
        self._epoch_sum = 0.0
        self._epoch_count = 0

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT

    def _trained_state(self) -> dict[str, torch.Tensor]:
        return {
            f"stages.{i}.{k}": v
            for i in range(self.first, len(self.net.stages))
            for k, v in self.net.stages[i].state_dict().items()
        }

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "settings": self.settings.to_dict(),
            "first_stage": self.first,
            "model": self._trained_state(),
            "optimizer": self.optimizer.state_dict(),
            "numpy_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "epoch_losses": self.epoch_losses,
            "epoch_partial": (self._epoch_sum, self._epoch_count),
        }
        _save_atomic(state, self.checkpoint_path)
        log.info("checkpoint at step %d saved to %s", self.step, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        if state["first_stage"] != self.first:
            raise BadInputError(f"{self.checkpoint_path} trains other stages than these settings")
        _missing, unexpected = self.net.load_state_dict(state["model"], strict=False)
        if unexpected:
            raise BadInputError(f"{self.checkpoint_path} does not fit this network ({unexpected[:3]}...)")
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.epoch_losses = list(state["epoch_losses"])
        self._epoch_sum, self._epoch_count = state["epoch_partial"]
        log.info("resuming from step %d of %s", self.step, self.checkpoint_path)
        return True

    def load_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(state, strict=False)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        photos, views, labels = self.sampler.sample()
        # Memory-mapped fancy indexing reads rows in the order given; sorting makes the reads sequential.
        order = np.lexsort((views, photos))
        data = self.features.array[photos[order], views[order]]
        inputs = torch.from_numpy(np.ascontiguousarray(data)).to(self.device)
        if inputs.dtype == torch.float16:
            inputs = inputs.to(torch.float32)
        return inputs, torch.from_numpy(labels[order]).to(self.device)

    def train(self) -> TrainResult:
        resumed = self.step if self.step else 0
        started = time.monotonic()
        total = self.settings.steps
        bar = tqdm(total=total, initial=self.step, desc="fine-tuning", unit="step", disable=not self.progress)
        try:
            while self.step < total:
                inputs, labels = self._batch()
                descriptors = self.net(inputs, self.first)
                loss = metric_loss(self.settings.loss, descriptors, labels, self.settings.margin)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.step += 1
                self._epoch_sum += float(loss.detach())
                self._epoch_count += 1
                bar.update(1)
                bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
                if self.step % self.steps_per_epoch == 0 or self.step == total:
                    self.epoch_losses.append(self._epoch_sum / max(self._epoch_count, 1))
                    self._epoch_sum, self._epoch_count = 0.0, 0
                    self.save_checkpoint()
        except KeyboardInterrupt:
            # The step in flight may have half-updated the weights, so the last epoch's checkpoint is kept
            # as it is: resuming from it repeats exactly what an uninterrupted run would have done.
            log.warning(
                "interrupted at step %d of %d; a resumed run continues from the last checkpoint", self.step, total
            )
            raise
        finally:
            bar.close()
        return TrainResult(
            steps=self.step,
            epochs_completed=len(self.epoch_losses),
            seconds=time.monotonic() - started,
            epoch_losses=self.epoch_losses,
            resumed_from_step=resumed,
        )
