//! Queue backend against a real Redis.
