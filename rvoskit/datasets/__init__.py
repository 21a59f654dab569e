"""Readers of native RVOS datasets (converters) and writers of native layouts and submissions."""
