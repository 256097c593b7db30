"""DSO Technical Platform."""
