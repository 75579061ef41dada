"""Parts shared by the methods: datasets (fairkit.data), networks (fairkit.nets), metrics (fairkit.metrics)."""
