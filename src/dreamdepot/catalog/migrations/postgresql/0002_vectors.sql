-- Vectors in pgvector (>= 0.6). The stored bytes (vector, dtype, dim) stay the record, as
-- in SQLite; embedding is the same vector as pgvector's type, for its indexes. It has no
-- fixed dimension: each (model, kind, dimension) gets its own partial HNSW index over
-- embedding::vector(dim) (catalog/postgres.py ensure_vector_index), so vectors of two
-- models never mix and changing the model rebuilds only that model's index.
CREATE EXTENSION IF NOT EXISTS vector;
ALTER TABLE embeddings ADD COLUMN embedding vector;
