"""The Run detail page: its sections, its tables, the test digits and the first layer's kernels."""
