"""Alerts: things staff should look at (failed payments, trials ending, quota thresholds ...)."""
