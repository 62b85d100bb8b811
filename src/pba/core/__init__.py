"""Layer 1, the foundation: what every other layer uses and that knows nothing of augmentation
or training. Errors (`errors`), where and how runs execute (`options`, `device`, `precision`,
`parallel`, `allocator`), files written whole (`atomic`) in directories one process owns
(`directory`, `lock`), time (`timing`), formatting, the statistics of a verdict (`verdict`),
and the old module paths (`moved`)."""
