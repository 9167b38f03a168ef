"""Learning reward models from data."""
