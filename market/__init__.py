"""Market Platform: order book, sessions, clearing, outcomes, activation records, settlement."""
