"""Names shared by the rows' writers (model jobs) and readers (tables), free of heavy imports."""

EXCLUDED = "excluded"  # the condition of a sample's row when the experiment cannot use it
