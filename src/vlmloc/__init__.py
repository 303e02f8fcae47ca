"""vlmloc: the library behind the workflow reproducing 'Mechanisms of Object Localization in VLMs'."""

__version__ = "0.1.0"
