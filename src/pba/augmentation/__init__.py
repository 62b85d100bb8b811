"""Layer 2, augmentation: a policy and a schedule of them (`policy`, `schedule`, `ramp`), which
ops each image gets (`sampling`), applying them per image or per batch (`transforms`, `fused`,
`epoch`) and the baseline after them (`baseline`). The ops themselves are `pba.ops`."""
