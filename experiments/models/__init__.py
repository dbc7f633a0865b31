"""Saved models (data, never code) and prediction with them."""
