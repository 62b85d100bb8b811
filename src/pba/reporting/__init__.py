"""Layer 6, what people see: progress bars (`progress`), the search's recorders (`recorders`),
plots (`plot`), TensorBoard (`tensorboard`) and `pba report`'s tables (`report`)."""
