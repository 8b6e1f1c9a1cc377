//! Flinks client against the simulator.
