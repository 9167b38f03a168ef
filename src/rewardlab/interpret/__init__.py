"""Interpretation: saliency, counterfactual probes, figures."""
