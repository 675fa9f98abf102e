//! Integration tests of `agentopt-math`.

mod answer;
mod checking;
mod code;
mod craft;
mod data;
mod normalize;
mod numeric;
mod properties;
mod sympy;
