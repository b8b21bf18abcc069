"""The store: every table and all SQL; RunStore is the facade the rest of the engine uses."""
