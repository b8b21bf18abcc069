"""The Data page: views of the HDF5 dataset."""
