"""Groups of runs: grids and Optuna studies."""
