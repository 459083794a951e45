//! Exact Hamming index: placeholder, filled in by the index work.
