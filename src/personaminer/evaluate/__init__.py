"""Evaluation: the temporal split, and future-interaction prediction against baselines (``docs/evaluate.md``)."""

from personaminer.evaluate.run import EvalConfig, LeakageError, run_evaluation, to_markdown
from personaminer.evaluate.split import (
    SplitConfig,
    SplitConflict,
    check_no_leakage,
    split_user_ids,
    split_users,
)
from personaminer.evaluate.systems import REGISTRY as SYSTEMS
from personaminer.evaluate.systems import SystemSpecError, parse_specs

__all__ = ["SYSTEMS", "EvalConfig", "LeakageError", "SplitConfig", "SplitConflict", "SystemSpecError",
           "check_no_leakage", "parse_specs", "run_evaluation", "split_user_ids", "split_users", "to_markdown"]
