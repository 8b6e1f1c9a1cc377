//! Durable Redis queue backend (in progress).
