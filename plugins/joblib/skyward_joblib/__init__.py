"""Placeholder until the joblib plugin lands."""
