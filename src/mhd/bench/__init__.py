"""Benchmarks: the trainer's throughput against a naive federated loop and plain training, and how
speed and memory scale with clients and heads."""
