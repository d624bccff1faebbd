"""Plain reference implementations in other frameworks, for side-by-side benchmarks (never runtime code)."""
