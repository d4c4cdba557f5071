"""Evaluation: the protocol (temporal split, held-out roles) and future-interaction prediction against
baselines (``docs/evaluate.md``)."""

from personaminer.evaluate.report import to_markdown
from personaminer.evaluate.run import EvalConfig, LeakageError, run_evaluation
from personaminer.evaluate.split import (
    SplitConfig,
    SplitConflict,
    assign_roles,
    check_no_leakage,
    load_roles,
    split_user_ids,
    split_users,
    store_roles,
)
from personaminer.evaluate.systems import REGISTRY as SYSTEMS
from personaminer.evaluate.systems import SystemSpecError, parse_specs

__all__ = ["SYSTEMS", "EvalConfig", "LeakageError", "SplitConfig", "SplitConflict", "SystemSpecError",
           "assign_roles", "check_no_leakage", "load_roles", "parse_specs", "run_evaluation", "split_user_ids",
           "split_users", "store_roles", "to_markdown"]
