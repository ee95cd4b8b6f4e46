"""Compile-time scaling benchmark; the same as `hive bench compile`."""

from hive.bench.compile_scale import main

if __name__ == "__main__":
    main()
