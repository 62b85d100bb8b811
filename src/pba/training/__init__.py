"""Layer 4, training: one model's recipe (`recipes`), its augmentation by mode (`augment`), the
epoch loop with its checkpoints (`loop`) and the check that decides a dataset's baseline
(`baseline_check`)."""
