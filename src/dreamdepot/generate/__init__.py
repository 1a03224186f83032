"""Generation: back ends (A1111/Forge HTTP API), typed requests, a persistent job queue."""
