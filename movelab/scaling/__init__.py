"""Scaling-law fits: summed Huber loss of log residuals, L-BFGS-B from a grid of starts, and
percentile intervals from bootstrap refits (see movelab.scaling.fit)."""

from movelab.scaling.fit import (EPOCH_START_GRID, BootstrapFit, ChinchillaFit, PowerLawFit,
                                 fit_chinchilla, fit_power_law)
from movelab.scaling.joint import (FORMS, HeldoutError, JointFit, compare_forms, fit_joint,
                                   heldout_error)

__all__ = ["EPOCH_START_GRID", "BootstrapFit", "ChinchillaFit", "PowerLawFit", "fit_chinchilla",
           "fit_power_law", "FORMS", "HeldoutError", "JointFit", "compare_forms", "fit_joint",
           "heldout_error"]
