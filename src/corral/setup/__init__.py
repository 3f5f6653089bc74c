"""The flows behind `corral cluster ...`: making a cluster, admitting hosts, removing them."""
