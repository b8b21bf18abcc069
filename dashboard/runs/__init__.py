"""The Runs page: its table (view, columns, filters, sorting, CSV) and its writes (tags, deletes)."""
