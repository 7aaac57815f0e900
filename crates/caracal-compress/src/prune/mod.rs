//! Structured pruning of FFN neurons and KV-head groups.
