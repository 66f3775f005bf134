"""A simulated SaaS company, so everything can be run and tested without private data.

Each account carries a hidden health that drifts month to month. Health drives what the history
records (active users, breadth of features, tickets, NPS), and the churn, expansion and downgrade
hazards are computed only from those recorded quantities. The oracle (``truth.parquet``) rolls
the same dynamics forward to give the true 90-day probabilities that no model can beat.
"""

from churnlens.synth.simulate import CompanyConfig, generate_company

__all__ = ["CompanyConfig", "generate_company"]
