//! call — see lib.rs for the layout.
