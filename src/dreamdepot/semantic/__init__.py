"""The semantic layer: prompt embeddings, vector search, suggestions and the dream cache."""
