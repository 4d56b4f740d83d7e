import os

# Arrow's memory from jemalloc, which hands freed memory back to the system; with the wheels'
# default (mimalloc) a 1M-row Parquet export peaked ~60 MB higher for the same ~40 MB of Arrow
# data (bench/export.py). Arrow reads this once, at its first allocation, so it is set before
# this package imports pyarrow; an operator's own setting wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
