"""One run end to end: fit with the store callback, evaluate, save; the standalone script."""
