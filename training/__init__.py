"""Training: datasets, fine-tuning, the gate, the registry, the bundle serving path; may import core, governance."""
