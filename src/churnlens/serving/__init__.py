"""Serving: explained risk scores for every account, as a score table and over HTTP."""
