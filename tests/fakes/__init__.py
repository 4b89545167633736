"""Stand-ins for the servers the controllers talk to, written from those servers' documented APIs."""
