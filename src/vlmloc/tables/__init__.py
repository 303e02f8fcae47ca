"""The tables of every experiment, computed from cached rows (no torch): one module per
experiment's tables, ``accuracy`` for the cells they share."""
