"""Energy-aware pruning driver: uses the simulator's per-layer energy to decide what to prune."""
