"""Architectures as data, built into Keras models."""
