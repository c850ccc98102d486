"""Plotting (matplotlib)."""
