"""Pipeline stages: where the pool comes from (sources), how its images are decoded, and the
model stages (detect, embed), each a :class:`~taast_ray.stages.stage.Stage`."""
