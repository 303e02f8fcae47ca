"""One function per paper table/figure; each writes PNG (and PDF where asked)."""
