"""Training configuration: everything besides the model that decides a run's outcome."""

from __future__ import annotations

import math
from dataclasses import dataclass

from movelab.accounting import analytic_costs
from movelab.config import ConfigError, DictConfig, ModelConfig, config_hash

OPTIMIZERS = ("adamw", "muon")


@dataclass(frozen=True)
class TrainConfig(DictConfig):
    corpus: str = "wiki"
    # The horizon: exactly one of tokens, tokens per active parameter, or a FLOP budget.
    tokens: int | None = None
    tokens_per_param: float | None = None
    flops: float | None = None
    batch_size: int = 16           # sequences per optimizer step (the global batch)
    optimizer: str = "adamw"       # adamw everywhere, or muon for the transformer matrices
    # peak AdamW learning rate of the matmul weights and norms *at width 64*; it scales as
    # 64 / width (muP's rule for Adam on hidden weights). 1e-2 is the best mean over 3 seeds at
    # d4, and seeds agree there; 2e-2 won on seed 0 alone but spread seeds by 0.2 BPB
    # (docs/research-log.md, 2026-11-25)
    lr: float = 1e-2
    embedding_lr: float = 0.1      # token embedding; width-independent
    memory_lr: float = 0.01        # LaVE tables and MoVE bank (tuned on d4 MoVE x4, research log)
    muon_lr: float = 0.02
    weight_decay: float = 0.1      # on matrices only
    warmup_frac: float = 0.05
    final_lr_frac: float = 0.1     # cosine decay from the peak down to this fraction
    grad_clip: float = 1.0
    # full validation passes spread evenly over the run, the last at its end (on the default
    # corpus one pass costs about as much as training on 30k tokens)
    evals: int = 6
    seed: int = 0

    def __post_init__(self):
        horizons = [h for h in (self.tokens, self.tokens_per_param, self.flops) if h is not None]
        if len(horizons) != 1:
            raise ConfigError("give exactly one horizon: --tokens N, --tokens-per-param R or "
                              "--flops C")
        if not horizons[0] > 0:
            raise ConfigError(f"the horizon must be positive, got {horizons[0]}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose {' or '.join(OPTIMIZERS)}")
        for name in ("batch_size", "evals"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
        if not 0 <= self.warmup_frac < 1 or not 0 <= self.final_lr_frac <= 1:
            raise ConfigError("--warmup-frac must be in [0, 1) and --final-lr-frac in [0, 1]")

    def total_steps(self, model: ModelConfig) -> int:
        tokens_per_step = self.batch_size * model.seq_len
        if self.tokens is not None:
            tokens = self.tokens
        elif self.tokens_per_param is not None:
            tokens = self.tokens_per_param * analytic_costs(model).params_active
        else:
            tokens = self.flops / analytic_costs(model).flops_per_token_train
        return max(1, math.ceil(tokens / tokens_per_step))



@dataclass(frozen=True)
class RunConfig:
    """A run is a model and a way to train it; its hash names it."""

    model: ModelConfig
    train: TrainConfig

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "train": self.train.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        try:
            return cls(ModelConfig.from_dict(d["model"]), TrainConfig.from_dict(d["train"]))
        except (KeyError, TypeError) as err:
            raise ConfigError(f"not a movelab run config ({err}); expected keys 'model' and "
                              "'train' as written in result.json") from None

    def hash(self) -> str:
        return config_hash(self.to_dict())
