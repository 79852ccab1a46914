"""Run directories, atomic files and parquet shards."""
