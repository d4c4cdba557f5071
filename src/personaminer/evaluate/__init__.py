"""Evaluation: the temporal split, and future-interaction prediction against baselines (``docs/evaluate.md``)."""

from personaminer.evaluate.split import (
    SplitConfig,
    SplitConflict,
    check_no_leakage,
    split_user_ids,
    split_users,
)

__all__ = ["SplitConfig", "SplitConflict", "check_no_leakage", "split_user_ids", "split_users"]
