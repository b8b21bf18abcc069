"""Runs in and out of Digit Lab: import a Keras model, export to TensorBoard and MLflow, import TensorBoard logs.

Level 6 of the layer table (beside core.worker, never importing it): it may use the store,
training's public pieces and prediction; the CLI and core.track sit above it.
"""
