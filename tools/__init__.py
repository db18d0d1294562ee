"""Actions on the outside world (GPUs, docker, nvcc, citations). Imports swarm models only."""
