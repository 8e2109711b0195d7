//! Placeholder: filled in by the MPPE work (see mppe/mod.rs).
