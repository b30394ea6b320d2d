"""Reporting: the run's front page (report.html) from whatever the run dir holds."""
