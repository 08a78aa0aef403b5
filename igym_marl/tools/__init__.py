"""The commands behind ``igym-marl replay`` and ``igym-marl bench`` (the scripts in scripts/ and
benchmarks/ call the same functions)."""
