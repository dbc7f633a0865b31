"""One run from config to result: settings, splits, the model, training, device knobs, preemption."""
