"""The explorer: a static, offline HTML report over a workspace (``personaminer report``)."""

from personaminer.explorer.build import ReportConfig, build_report, user_page

__all__ = ["ReportConfig", "build_report", "user_page"]
