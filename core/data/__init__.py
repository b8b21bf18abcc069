"""The dataset: MNIST sources into HDF5 (ingest) and reading it back, checked (dataset)."""
