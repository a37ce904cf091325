//! runtime — see lib.rs for the layout.
