//! sip — see lib.rs for the layout.
