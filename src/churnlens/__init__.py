"""churnlens: churn and expansion prediction for SaaS Customer Success teams.

The package has three rooms that import one way only: ``serving`` may import ``training`` and
``features``; ``training`` may import ``features``; ``features`` imports neither. Beneath them sit
``raw`` (the input contract, loading and validation) and ``synth`` (the generated demo company).
"""

__version__ = "0.1.0"
