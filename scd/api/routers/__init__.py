"""One router per resource of the SCD API."""
