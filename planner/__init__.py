"""Planning: how many agents a forecast needs (Erlang A and C) and a simulation that checks it."""
