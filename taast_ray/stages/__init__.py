"""Pipeline stages: where the pool comes from (sources) and how its images are decoded."""
