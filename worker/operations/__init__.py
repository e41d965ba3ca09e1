"""What operator commands and tasks both call: replay, republish, destinations, health."""
