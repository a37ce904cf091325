//! media — see lib.rs for the layout.
