//! Placeholder: filled in by the wire-format work (see wire/mod.rs).
