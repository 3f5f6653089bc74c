"""What a host of a real cluster runs and how it is described: its config (`<etc>/host.json`),
the command lines of its services, their systemd units, and starting them (systemd where it is
PID 1, the lab supervisor elsewhere)."""
