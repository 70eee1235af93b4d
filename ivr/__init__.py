"""IVR: flows as data (a pure model, its checks, its YAML) and the FastAGI adapter that runs them."""
