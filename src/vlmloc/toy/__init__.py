"""Toy VLMs trained from scratch on the synthetic shapes: the demo's models with a known answer."""
