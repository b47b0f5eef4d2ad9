"""`edgernn train --auto`: a small, deterministic search over the model and the recipe.

The given recipe first (at the frame that reads the longest sequence in TARGET_STEPS steps, and
hidden 32 or the largest size under it that fits the flash limit); then a steepest-ascent climb on
the frame x hidden grid: every neighbour of the best (one step along either axis) is scored before
moving to the best of them, until none beats it; then every recurrent init, every learning
rate and every input clip (INPUT_CLIPS; feature data only) with the best so far. The test split
is never looked at to choose.

The climb replaced a walk of one axis at a time (frame to exhaustion, then hidden), which is
order-dependent: on ArrowHead it moved the frame 16 -> 8 at hidden 32, then the hidden size at
frame 8, and never scored frame 16 at hidden 64, the best cell of the grid by 10 x 5-fold
cross-validation (0.815 against <= 0.784 for every other frame and hidden size; docs/training.md).

How a candidate is scored depends on the data's size:

- **Small many-to-one sets** (train + val at most CV_MAX_SEQUENCES sequences, such as the long
  bundled sets: 36-100): K_FOLDS-fold stratified cross-validation on train + val, repeated
  cv_repeats() times, every fold trained for the recipe's full epochs (no early stopping: the
  cosine schedule ends it) and scored at its last epoch;
  score = mean held-out accuracy, ties broken by mean held-out loss.
  A 7-20-sequence validation split ranks candidates by one or two sequences; five folds see every
  sequence once. The winner is then **retrained on train + val** for the same epochs, and that
  model is written: on 29-80 training sequences, the 7-20 validation ones are data worth having
  (measured in docs/training.md). The checkpoint's validation metrics are the winner's
  cross-validation means, an honest estimate, since no model is scored on what it trained on.
- **Larger sets**: one run per candidate on train, early-stopped and scored on the validation
  split (accuracy, then loss); the winner is kept as trained.

Deterministic for a seed: every run trains with the same seed on one thread, the folds are drawn
from the seed, and nothing time-dependent is recorded. The budget decides only which candidates
run: a candidate is skipped when the time spent plus its estimate (plus, with cross-validation,
the final retrain's) would pass the budget, and the search goes on to the next, which may be
cheaper (the first one always runs, and so does the retrain, so there is a model). Skipping
rather than stopping let PickupGestureWiimoteZ's searches, which met a frame-4 hidden-128
candidate estimated past 10 minutes after 3, still try the inits, rates and clips. A candidate
that would not fit `max_flash` is recorded, not trained.

Flash is counted by a function the caller passes (`edgernn.pipeline.flash_bytes`: the C backend's
count), so this layer needs nothing from the contract or the backends below it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np

from edgernn.config import INITS, ModelConfig, Task, TrainConfig
from edgernn.data.dataset import Dataset, Split
from edgernn.errors import InputError
from edgernn.train.loop import ModelSpec, TrainResult, model_config, train
from edgernn.train.model import EdgeRNN

HIDDEN = (8, 16, 32, 64, 128)
BASE_HIDDEN = 32
FRAMES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The base frame is the smallest that reads the longest sequence in at most this many steps: the
# issue's own trial (150 samples in 15-30 steps) and the cross-validated measurements of
# docs/training.md (ArrowHead and ACSF1 best at 7-23 steps, worse at 60-90) show a tanh RNN
# learning over about a dozen steps, not hundreds.
TARGET_STEPS = 16
# Cross-validation scores the candidates of many-to-one sets up to this many train + val
# sequences; above it a validation split is large enough to rank them and 5x the cost is not.
CV_MAX_SEQUENCES = 200
K_FOLDS = 5
# Cross-validation is repeated, each time with its own fold draw and training seed (seed, seed + 1,
# ...), until about this many held-out predictions score a candidate (ArrowHead's 36 sequences:
# 5 passes; ACSF1's 100: 2), at most MAX_CV_REPEATS: one 5-fold pass on 36 sequences moved a
# candidate's score by 10-15 points between seeds (docs/training.md), as much as the differences
# it had to rank.
CV_PREDICTIONS = 180
MAX_CV_REPEATS = 5
LRS = (3e-3, 1e-2, 1e-3)
# Input clips tried last, around the long-sequence recipe's 3 standard deviations (0: none). On
# ACSF1 at frame 128 cross-validation ranks 2 first (0.607 float / 0.610 int8, against 0.562 /
# 0.562 at 3 and 0.590 / 0.527 with none), and so does the test split (docs/training.md).
INPUT_CLIPS = (2.0, 3.0, 4.0, 0.0)
DEFAULT_BUDGET_MINUTES = 10.0
# Bytes of flash model.h needs for a model of this shape trained on this data (weights + LUT).
FlashOf = Callable[[Dataset, ModelConfig], int]
# Accuracy on ds.val of the int8 model of a trained float model, calibrated on ds.train (the
# caller's quantizer: edgernn.pipeline.int8_val_accuracy).
Int8Of = Callable[[EdgeRNN, Dataset], float]


@dataclass(frozen=True)
class Candidate:
    frame: int
    hidden_size: int
    init: str
    lr: float
    input_clip: float = 0.0  # ModelConfig.input_clip; 0: none

    def label(self) -> str:
        clip = f"input clip {self.input_clip:g}" if self.input_clip else "no input clip"
        return f"frame {self.frame}, hidden {self.hidden_size}, init {self.init}, lr {self.lr:g}, {clip}"


@dataclass(frozen=True)
class Trial:
    """One candidate's outcome. Status: "trained", or "over-flash" (not trained: too big)."""

    candidate: Candidate
    flash_bytes: int
    status: str
    val_accuracy: float | None = None
    val_nll: float | None = None
    epochs_run: int = 0
    val_int8_accuracy: float | None = None

    @property
    def score(self) -> tuple[float, float]:
        """Larger is better: validation accuracy -- the lower of the float and the int8 model's,
        when the int8 one was measured -- then lower validation loss. The int8 model is what a
        microcontroller runs: a candidate whose quantization costs accuracy ranks by what is left
        (ACSF1 at frame 256 lost 7 points to int8 when only float was scored)."""
        if self.val_accuracy is None or self.val_nll is None:
            return (-1.0, -float("inf"))
        acc = (
            self.val_accuracy
            if self.val_int8_accuracy is None
            else min(self.val_accuracy, self.val_int8_accuracy)
        )
        return (acc, -self.val_nll)

    def to_dict(self) -> dict[str, Any]:
        return {
            "frame": self.candidate.frame,
            "hidden_size": self.candidate.hidden_size,
            "init": self.candidate.init,
            "lr": self.candidate.lr,
            "input_clip": self.candidate.input_clip,
            "flash_bytes": self.flash_bytes,
            "status": self.status,
            "val_accuracy": self.val_accuracy,
            "val_nll": self.val_nll,
            "val_int8_accuracy": self.val_int8_accuracy,
            "epochs_run": self.epochs_run,
        }


@dataclass
class AutoResult:
    spec: ModelSpec
    tc: TrainConfig
    result: TrainResult  # the chosen candidate's run
    trials: list[Trial]
    chosen: int  # index into trials
    budget_minutes: float
    max_flash: int | None
    skipped: list[Candidate]  # left out for the budget, in the order the search met them
    cv_repeats: int = 0  # > 0: scored by cv_repeats x K_FOLDS-fold CV on train + val, retrained on both

    def meta(self) -> dict[str, Any]:
        """What the checkpoint records under "auto" (no timings: the bytes stay deterministic)."""
        return {
            "scoring": f"{self.cv_repeats} x {K_FOLDS}-fold cross-validation on train + val, then retrained"
            if self.cv_repeats
            else "validation split",
            "budget_minutes": self.budget_minutes,
            "max_flash": self.max_flash,
            "stopped_by_budget": bool(self.skipped),
            # Only when the budget bound: which candidates ran then depends on the machine's speed.
            **({"skipped_by_budget": [c.label() for c in self.skipped]} if self.skipped else {}),
            "chosen": self.chosen,
            "candidates": [t.to_dict() for t in self.trials],
        }


def pooled(ds: Dataset) -> Split:
    """Train and val as one split (padded to the longer of the two)."""
    t = max(ds.train.x.shape[1], ds.val.x.shape[1])

    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, [(0, 0), (0, t - a.shape[1])] + [(0, 0)] * (a.ndim - 2))

    return Split(
        np.concatenate([pad(ds.train.x), pad(ds.val.x)]),
        np.concatenate([ds.train.y, ds.val.y]),
        np.concatenate([ds.train.lengths, ds.val.lengths]),
    )


def _subset(split: Split, idx: np.ndarray) -> Split:
    return Split(split.x[idx], split.y[idx], split.lengths[idx])


def stratified_folds(y: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, held-out) index pairs: a seeded shuffle, sorted by class, dealt round-robin, so
    every class is spread over the folds to within one sequence."""
    order = np.random.default_rng(seed).permutation(len(y))
    order = order[np.argsort(y[order], kind="stable")]
    fold = np.empty(len(y), np.int64)
    fold[order] = np.arange(len(y)) % k
    return [(np.flatnonzero(fold != i), np.flatnonzero(fold == i)) for i in range(k)]


def uses_cross_validation(ds: Dataset) -> bool:
    """Small many-to-one sets are scored by cross-validation on train + val (module docstring)."""
    n = len(ds.train) + len(ds.val)
    return ds.task is Task.MANY_TO_ONE and K_FOLDS <= n <= CV_MAX_SEQUENCES


def cv_repeats(n: int) -> int:
    """Passes of K_FOLDS-fold cross-validation over n sequences: CV_PREDICTIONS held-out
    predictions, at least 1 pass, at most MAX_CV_REPEATS."""
    return max(1, min(MAX_CV_REPEATS, math.ceil(CV_PREDICTIONS / n)))


class _Search:
    """The bookkeeping of one search: trials so far, best so far, the clock."""

    def __init__(
        self,
        ds: Dataset,
        spec: ModelSpec,
        tc: TrainConfig,
        flash_of: FlashOf,
        int8_of: Int8Of | None,
        budget_s: float,
        max_flash: int | None,
        log: Callable[[str], None],
    ) -> None:
        self.ds, self.spec, self.tc, self.flash_of, self.int8_of = ds, spec, tc, flash_of, int8_of
        self.budget_s, self.max_flash, self.log = budget_s, max_flash, log
        self.start = time.monotonic()
        self.trials: list[Trial] = []
        self.best_result: TrainResult | None = None  # validation-split scoring only
        self.seconds: dict[tuple[int, int], float] = {}  # (frame, hidden) -> longest run seen
        self.best: int | None = None
        self.skipped: list[Candidate] = []  # estimated past the budget, so not run
        self._flash: dict[tuple[int, int], int] = {}
        self.cv = uses_cross_validation(ds)
        self.repeats = 0
        if self.cv:
            # Every fold and the final retrain run all epochs: no held-out split to stop on.
            self.tc = replace(tc, early_stop=False)
            self.pool = pooled(ds)
            self.repeats = cv_repeats(len(self.pool))
            self.folds = [
                (tc.seed + r, fit, held)
                for r in range(self.repeats)
                for fit, held in stratified_folds(self.pool.y, K_FOLDS, tc.seed + r)
            ]

    def model(self, c: Candidate) -> ModelConfig:
        return model_config(self.ds, self.spec_of(c))

    def spec_of(self, c: Candidate) -> ModelSpec:
        return replace(self.spec, hidden_size=c.hidden_size, frame=c.frame, input_clip=c.input_clip)

    def recipe(self, c: Candidate) -> TrainConfig:
        return replace(self.tc, init=c.init, lr=c.lr)

    def flash(self, c: Candidate) -> int:
        key = (c.frame, c.hidden_size)
        if key not in self._flash:
            self._flash[key] = self.flash_of(self.ds, self.model(c))
        return self._flash[key]

    def fits(self, c: Candidate) -> bool:
        return self.max_flash is None or self.flash(c) <= self.max_flash

    def estimate(self, c: Candidate) -> float:
        """Seconds the next candidate may take: what its cell (frame, hidden) took if it ran before
        (another init, rate or clip costs the same), else the longest so far, scaled up linearly
        with hidden size and with the number of steps (1 / frame). The per-step cost of these small
        cells grows slower than H^2 on a CPU; fixed per-step overhead dominates."""
        if (c.frame, c.hidden_size) in self.seconds:
            return self.seconds[(c.frame, c.hidden_size)]
        return max(
            (s * max(1.0, c.hidden_size / h) * max(1.0, f / c.frame) for (f, h), s in self.seconds.items()),
            default=0.0,
        )

    def reserve(self) -> float:
        """Seconds kept for the final retrain on train + val: one fold's time, scaled by the
        larger training set (k / (k - 1)), with room to spare."""
        if not self.cv or self.best is None:
            return 0.0
        c = self.trials[self.best].candidate
        return 1.5 * self.seconds[(c.frame, c.hidden_size)] / (self.repeats * (K_FOLDS - 1))

    def int8(self, r: TrainResult, ds: Dataset) -> float | None:
        return None if self.int8_of is None else self.int8_of(r.model, ds)

    def score(self, c: Candidate) -> tuple[Trial, TrainResult | None]:
        """The candidate's trial and (validation-split scoring only) the run itself."""
        if not self.cv:
            r = train(self.ds, self.model(c), self.recipe(c), False)
            val = r.metrics["val"]
            trial = Trial(
                c,
                self.flash(c),
                "trained",
                val["test_accuracy"],
                val["nll"],
                len(r.history),
                self.int8(r, self.ds),
            )
            return trial, r
        accs, nlls, int8s = [], [], []
        for seed, fit, held in self.folds:
            ds = replace(self.ds, train=_subset(self.pool, fit), val=_subset(self.pool, held))
            r = train(ds, self.model(c), replace(self.recipe(c), seed=seed), False)
            accs.append(r.metrics["val"]["test_accuracy"])
            nlls.append(r.metrics["val"]["nll"])
            int8s.append(self.int8(r, ds))
        mean_int8 = None if self.int8_of is None else float(np.mean([a for a in int8s if a is not None]))
        trial = Trial(
            c, self.flash(c), "trained", float(np.mean(accs)), float(np.mean(nlls)), len(r.history), mean_int8
        )
        return trial, None

    def run(self, c: Candidate) -> None:
        if any(t.candidate == c for t in self.trials):
            return
        n = len(self.trials) + 1
        if not self.fits(c):
            self.trials.append(Trial(c, self.flash(c), "over-flash"))
            self.log(f"[{n}] {c.label()}: {self.flash(c)} B > --max-flash, skipped")
            return
        elapsed = time.monotonic() - self.start
        estimate = self.estimate(c)
        if self.trials and elapsed + estimate + self.reserve() > self.budget_s:
            # Skipped, not the end of the search: a cheaper candidate after it may still fit.
            if c not in self.skipped:
                self.skipped.append(c)
            self.log(  # no [n]: a skipped candidate is not recorded, so it takes no number
                f"{c.label()}: about {estimate / 60:.1f} min, past the budget "
                f"({elapsed / 60:.1f} of {self.budget_s / 60:g} min spent), skipped"
            )
            return
        if c in self.skipped:  # a cheaper estimate now: it runs after all
            self.skipped.remove(c)
        how = f"{self.repeats} x {K_FOLDS}-fold CV" if self.cv else "validation split"
        self.log(f"[{n}] {c.label()} ({self.flash(c)} B flash, {how}) ...")
        t0 = time.monotonic()
        trial, r = self.score(c)
        took = time.monotonic() - t0
        key = (c.frame, c.hidden_size)
        self.seconds[key] = max(took, self.seconds.get(key, 0.0))
        self.trials.append(trial)
        if self.best is None or trial.score > self.trials[self.best].score:
            self.best, self.best_result = len(self.trials) - 1, r
        b = self.trials[self.best]
        self.log(
            f"[{n}] val accuracy {trial.val_accuracy:.3f}{_int8_note(trial)} (loss {trial.val_nll:.3f}) "
            f"in {took:.0f} s; best so far: [{self.best + 1}] {b.candidate.label()}, "
            f"val accuracy {b.val_accuracy:.3f}{_int8_note(b)}"
        )

    def final_recipe(self, c: Candidate) -> TrainConfig:
        """The recipe the chosen model is written with. Retrained on train + val, it takes as many
        optimizer steps an epoch as each fold did, in batches of equal size: batch 32 on
        ArrowHead's 36 sequences would add a second step of 4 sequences to every epoch where the
        folds (28-29 sequences) took one, a schedule no candidate was scored with."""
        tc = self.recipe(c)
        if not self.cv:
            return tc
        fold_train = max(len(fit) for _, fit, _ in self.folds)
        steps = math.ceil(fold_train / tc.batch_size)
        return replace(tc, batch_size=math.ceil(len(self.pool) / steps))

    def final(self) -> TrainResult:
        """The chosen candidate's model: as trained (validation-split scoring), or retrained on
        train + val with its cross-validation means as the validation metrics."""
        assert self.best is not None
        if not self.cv:
            assert self.best_result is not None
            return self.best_result
        t = self.trials[self.best]
        self.log(f"retraining [{self.best + 1}] {t.candidate.label()} on train + val ...")
        r = train(
            replace(self.ds, train=self.pool), self.model(t.candidate), self.final_recipe(t.candidate), False
        )
        assert t.val_accuracy is not None and t.val_nll is not None
        r.metrics["val"] = {"test_accuracy": t.val_accuracy, "nll": t.val_nll, "n": len(self.pool)}
        return r

    @property
    def current(self) -> Candidate:
        assert self.best is not None
        return self.trials[self.best].candidate


def frames(ds: Dataset) -> tuple[int, ...]:
    """The frame sizes a data set allows: FRAMES up to its shortest sequence, for many-to-one
    feature data (the only models framing applies to, edgernn.frame); otherwise 1."""
    if ds.task is not Task.MANY_TO_ONE or ds.vocab:
        return (1,)
    shortest = min(int(s.lengths.min()) for s in (ds.train, ds.val, ds.test) if len(s))
    return tuple(k for k in FRAMES if k <= shortest)


def base_frame(ds: Dataset, allowed: tuple[int, ...]) -> int:
    """The smallest allowed frame that reads the longest sequence in TARGET_STEPS steps or fewer."""
    longest = max(int(s.lengths.max()) for s in (ds.train, ds.val, ds.test) if len(s))
    return next((k for k in allowed if math.ceil(longest / k) <= TARGET_STEPS), allowed[-1])


def base_hidden(search: _Search, frame: int, init: str, lr: float, clip: float) -> int:
    """BASE_HIDDEN, or the largest size of HIDDEN under it that fits the flash budget."""
    for h in sorted((h for h in HIDDEN if h <= BASE_HIDDEN), reverse=True):
        if search.fits(Candidate(frame, h, init, lr, clip)):
            return h
    smallest = Candidate(frame, min(HIDDEN), init, lr, clip)
    raise InputError(
        f"no candidate fits --max-flash {search.max_flash}: {smallest.label()} needs "
        f"{search.flash(smallest)} bytes of flash"
    )


def _int8_note(t: Trial) -> str:
    return "" if t.val_int8_accuracy is None else f", int8 {t.val_int8_accuracy:.3f}"


def neighbours(c: Candidate, frames: tuple[int, ...], hiddens: tuple[int, ...]) -> list[Candidate]:
    """The grid cells one step from c along the frame or the hidden axis: smaller frame, larger
    frame, smaller hidden size, larger hidden size (the order ties are settled in)."""
    f, h = frames.index(c.frame), hiddens.index(c.hidden_size)
    out = [replace(c, frame=frames[i]) for i in (f - 1, f + 1) if 0 <= i < len(frames)]
    return out + [replace(c, hidden_size=hiddens[i]) for i in (h - 1, h + 1) if 0 <= i < len(hiddens)]


class Climbing(Protocol):
    """What climb needs of a search (_Search; tests pass a scored grid)."""

    @property
    def current(self) -> Candidate: ...

    def run(self, c: Candidate) -> None: ...


def climb(search: Climbing, frames: tuple[int, ...], hiddens: tuple[int, ...]) -> None:
    """Steepest ascent from the best candidate: score all its neighbours (run() skips the ones
    already scored, or past the budget, and keeps the best), move to the best if it beat the
    current, repeat."""
    while True:
        here = search.current
        for n in neighbours(here, frames, hiddens):
            search.run(n)
        if search.current == here:
            return


def auto_train(
    ds: Dataset,
    spec: ModelSpec,
    tc: TrainConfig,
    flash_of: FlashOf,
    budget_minutes: float = DEFAULT_BUDGET_MINUTES,
    max_flash: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    int8_of: Int8Of | None = None,
) -> AutoResult:
    """Search frame, hidden size, init, learning rate and input clip (on ds.val, or by cross-validation on
    train + val for small many-to-one sets); return the chosen model's run and every trial.

    `spec` and `tc` give everything the search does not vary (layers, epochs, patience, schedule,
    batch size, seed)."""
    if not (budget_minutes > 0 and math.isfinite(budget_minutes)):
        raise InputError(f"the budget must be a positive finite number, got {budget_minutes!r} minutes")
    s = _Search(ds, spec, tc, flash_of, int8_of, budget_minutes * 60.0, max_flash, log)
    allowed = frames(ds) if not spec.bidirectional else (1,)  # framing streams: unidirectional only
    # A frame the caller chose is the base; frame 1 (the ModelSpec default) means "not chosen".
    f0 = spec.frame if spec.frame > 1 and spec.frame in allowed else base_frame(ds, allowed)
    clip0 = 0.0 if ds.vocab else spec.input_clip  # as model_config: a token model has no clip
    h0 = base_hidden(s, f0, tc.init, tc.lr, clip0)
    s.run(Candidate(f0, h0, tc.init, tc.lr, clip0))  # the recipe as given first
    climb(s, allowed, HIDDEN)
    for init in INITS:
        s.run(replace(s.current, init=init))
    for lr in LRS:
        s.run(replace(s.current, lr=lr))
    for clip in () if ds.vocab else INPUT_CLIPS:
        s.run(replace(s.current, input_clip=clip))
    assert s.best is not None  # the first always runs and fits
    result = s.final()  # the retrain on train + val logs its start: the notice below comes last
    if s.skipped:
        log(
            f"the budget skipped {len(s.skipped)} candidate(s); which ones depends on this machine's "
            "speed and load, so the same command may choose differently elsewhere: a larger --budget "
            "runs them all and makes the search repeatable"
        )
    best = s.trials[s.best].candidate
    return AutoResult(
        spec=s.spec_of(best),
        tc=s.final_recipe(best),
        result=result,
        trials=s.trials,
        chosen=s.best,
        budget_minutes=budget_minutes,
        max_flash=max_flash,
        skipped=s.skipped,
        cv_repeats=s.repeats,
    )
