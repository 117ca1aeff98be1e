"""MLflow tracking (parent sweep run, child trial runs) and the Pareto front."""

from .pareto import front_rows, pareto_mask, plot_front
from .store import SweepTracker, default_tracking_uri

__all__ = ["SweepTracker", "default_tracking_uri", "front_rows", "pareto_mask", "plot_front"]
