"""Raw history: the input contract, loading from files or databases, and validation."""
