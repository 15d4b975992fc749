"""Test and benchmark helpers that start the local venue (`sim_venue`) and a live/paper node against it (`live_node`)."""
