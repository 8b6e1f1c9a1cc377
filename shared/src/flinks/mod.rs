//! Flinks client (in progress).
