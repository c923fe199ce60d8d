//! Tests of the zone.
