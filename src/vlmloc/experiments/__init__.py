"""One module per experiment; each writes a tidy table of raw rows (answers are always kept)."""
