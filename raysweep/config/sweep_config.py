"""A validated sweep: the base trial sections, the fixed and searched parameters, and the structural sections."""

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from ..train.spec import TrialSpec
from .schema import Constraint, FinalEvalSection, MlflowSection, Objective, ResourcesSection, SweepSection
from .space import SearchParam

@dataclass
class SweepConfig:
    file: str
    name: str
    methods: List[str]  # one entry: fixed method; several: a categorical choice
    base: Dict[str, Any]  # trial sections after validation: dataset/model/threat/train/eval/pruning
    params: Dict[str, Dict[str, Any]]  # fixed params per method
    search: List[SearchParam]
    objectives: List[Objective]
    sweep: SweepSection
    resources: ResourcesSection
    mlflow: MlflowSection
    final_eval: FinalEvalSection
    storage_path: Optional[str]
    raw: Dict[str, Any] = field(default_factory=dict)  # the YAML as loaded (after --set)
    constraints: List[Constraint] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)  # what loading changed on the user's behalf; the CLI prints them

    @property
    def objective_specs(self) -> List[Dict[str, str]]:
        """The objectives as the front, the hypervolume and the schedulers take them: ``{"metric", "mode"}``."""
        return [{"metric": o.metric, "mode": o.mode} for o in self.objectives]

    def infeasible(self, metrics: Dict[str, Any]) -> bool:
        return any(c.violation(metrics) > 0 for c in self.constraints)

    @property
    def is_cross_method(self) -> bool:
        return len(self.methods) > 1

    def trial_spec(self, sampled: Dict[str, Any]) -> TrialSpec:
        """The full trial config for one point of the search space (keys as in ``search``)."""
        method = sampled.get("method", self.methods[0])
        d = copy.deepcopy(self.base)
        d["method"] = method
        d["method_params"] = dict(self.params.get(method, {}))
        d["repeats"] = self.sweep.repeats
        for sp in self.search:
            if sp.key not in sampled:
                continue
            sec, name = sp.target
            if sec == "params":
                d["method_params"][name] = sampled[sp.key]
            else:
                d.setdefault(sec, {})[name] = sampled[sp.key]
        return TrialSpec.from_dict(d)

    def describe_space(self) -> List[str]:
        lines = []
        if self.is_cross_method:
            lines.append(f"method: choice{self.methods}")
        for sp in self.search:
            only = f"   (only for {', '.join(sp.methods)})" if sp.methods and self.is_cross_method else ""
            lines.append(f"{sp.key}: {sp.dist.describe()}{only}")
        return lines
