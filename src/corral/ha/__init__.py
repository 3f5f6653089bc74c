"""High availability: HA settings and rules, and the pure state machine the manager runs."""
