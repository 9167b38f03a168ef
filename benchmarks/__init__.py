"""Speed and quality benchmarks; each module prints JSON lines (see GUIDE.md)."""
