"""Search-space YAML -> a validated ``SweepConfig``: the schema (``schema``), YAML loading (``loading``), the command
line's overrides (``overrides``), the search-space language (``space``), the validated config (``sweep_config``)
and the parse pipeline (``parse``)."""

from ..errors import ConfigError
from .loading import load_yaml
from .parse import import_plugins, load_config, parse_config
from .schema import METRICS, Constraint, EarlyStopping, FinalEvalSection, MlflowSection, Objective, ResourcesSection, SweepSection
from .space import Dist, SearchParam
from .sweep_config import SweepConfig

__all__ = ["ConfigError", "Constraint", "Dist", "EarlyStopping", "FinalEvalSection", "METRICS", "MlflowSection", "Objective",
           "ResourcesSection", "SearchParam", "SweepConfig", "SweepSection", "import_plugins", "load_config", "load_yaml",
           "parse_config"]
