"""The file contracts of SPEC.md §3 read back: detections and embeddings parquet, validated as
they stream, and the per-image spool the streaming pass keeps instead of the pool's score rows."""
