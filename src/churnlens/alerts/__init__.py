"""Automated risk alerts: rules that turn a score into follow-ups, and whether they worked."""
