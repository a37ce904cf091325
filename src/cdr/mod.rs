//! cdr — see lib.rs for the layout.
