//! http — see lib.rs for the layout.
