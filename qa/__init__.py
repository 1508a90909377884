"""QA sampling and human review of production calls; may import core, governance, training (beside serving)."""
