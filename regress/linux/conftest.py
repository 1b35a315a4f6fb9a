"""The suites run on the lab in ftplab/: its fixtures, options and report
come from ftplab.plugin (see there)."""

pytest_plugins = ["ftplab.plugin"]
