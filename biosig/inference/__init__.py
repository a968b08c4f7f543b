"""Using a model: streaming prediction, outputs, evaluation, explanations, plots and throughput."""
