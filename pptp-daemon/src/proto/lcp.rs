//! Placeholder: filled in by its issue (see proto/mod.rs).
