"""The Compare page: its tabs (histories, hyperparameters, confusion) and its tables."""
