"""The Study page: one Optuna study's views and charts."""
