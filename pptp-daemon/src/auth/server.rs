//! Placeholder: filled in by the authentication work (see auth/mod.rs).
