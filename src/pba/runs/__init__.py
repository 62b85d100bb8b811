"""Layer 6, runs that train models: a training run's directory and settings (`training_run`,
`training_config`: `pba train`) and the final models that compare augmentations
(`final_models`: the demo's and `pba reproduce`'s)."""
