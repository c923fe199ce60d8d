//! Status writer tests.
