"""Placeholder until the sklearn plugin lands."""
