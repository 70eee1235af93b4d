"""Period reports, hot topics and the contract assessment, computed from the store through metrics/kpi.py."""
