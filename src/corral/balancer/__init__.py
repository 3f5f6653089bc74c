"""Load balancing: which running VMs to move where, from their recent usage. Pure decisions
(`planner.plan`, `planner.place`, `planner.still_valid`) over plain data (`model`)."""
