"""Compile: regions generated (lower.py), the TVM part scheduled for CPU (schedules.py) or from a tuning
database (tuning_db.py), for a target (targets.py), checked against what the runtime can call."""
