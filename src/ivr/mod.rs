//! ivr — see lib.rs for the layout.
