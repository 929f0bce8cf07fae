"""Loupe demo: the whole review loop on a real scikit-learn model with simulated reviewers."""
