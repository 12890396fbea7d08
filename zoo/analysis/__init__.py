"""Analysis of what models compute: synaptic operations, energy estimates, NeuroBench-compatible summaries.

One module per job:

- `zoo.analysis.synops`: synaptic operations per connection (effective ACs / MACs and dense, NeuroBench 2.3
  definitions), including functional projections declared through ``functional_projections``;
- `zoo.analysis.energy`: energy estimates from operation counts (45 nm constants and presets);
- `zoo.analysis.neurobench`: NeuroBench-compatible summary (activation sparsity, synaptic operations, footprint,
  connection sparsity, parameter count).
"""
