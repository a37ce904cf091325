//! auth — see lib.rs for the layout.
