//! ivr — see lib.rs for the layout.
pub mod yaml;
