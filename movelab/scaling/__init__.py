"""Scaling-law fits: summed Huber loss of log residuals, L-BFGS-B from a grid of starts, and
percentile intervals from bootstrap refits (see movelab.scaling.fit); the sweep's runs as a
table (load), the quantities derived from them (analysis), and their figures (plot, figures,
imported on their own: they need matplotlib)."""

from movelab.scaling.analysis import (compare_to_standard, exchange_rate, fit_compute_laws, holm,
                                      law_flags, paired_difference, pooled_slot_gain,
                                      repetition_table, seed_noise, select_joint_law,
                                      slot_doubling_gains, slot_gains_over_training)
from movelab.scaling.fit import (EPOCH_START_GRID, BootstrapFit, ChinchillaFit, PowerLawFit,
                                 fit_chinchilla, fit_power_law)
from movelab.scaling.joint import (FORMS, HeldoutError, JointFit, compare_forms, fit_joint,
                                   heldout_error)
from movelab.scaling.load import load_curves, load_runs

__all__ = ["EPOCH_START_GRID", "BootstrapFit", "ChinchillaFit", "PowerLawFit", "fit_chinchilla",
           "fit_power_law", "FORMS", "HeldoutError", "JointFit", "compare_forms", "fit_joint",
           "heldout_error", "load_runs", "load_curves", "fit_compute_laws", "slot_doubling_gains",
           "seed_noise", "compare_to_standard", "exchange_rate", "select_joint_law",
           "repetition_table", "paired_difference", "holm", "law_flags", "pooled_slot_gain",
           "slot_gains_over_training"]
