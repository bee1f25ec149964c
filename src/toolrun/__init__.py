"""toolrun: run versioned command-line tools and toolchains for a team."""

__version__ = "0.1.0"
