"""Datasets: transition datasets (HDF5) and rollouts."""
