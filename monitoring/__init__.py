"""Production monitoring: call metrics, label-free accuracy estimates, alerts; may import core, governance, training."""
