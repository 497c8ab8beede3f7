"""movelab: a scaling-law lab for MoVE (mixture of value embeddings)."""

from movelab.accounting import Costs, analytic_costs
from movelab.config import ConfigError, ModelConfig, build_config

__all__ = ["Costs", "ConfigError", "ModelConfig", "analytic_costs", "build_config"]
__version__ = "0.1.0"
