"""Datasets: download, label correction, filtering, object removal, the synthetic shapes set."""
